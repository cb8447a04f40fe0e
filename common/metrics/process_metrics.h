// Resource use of this process, read from /proc/self on every scrape (Linux):
//   rlhf_process_cpu_seconds_total        counter: user + system CPU time
//   rlhf_process_resident_memory_bytes    gauge: resident set size
//   rlhf_process_virtual_memory_bytes     gauge: virtual memory size
//   rlhf_process_threads                  gauge: OS threads
//   rlhf_process_start_time_seconds       gauge: start time, Unix seconds
// The names follow the Prometheus client libraries' process collector with the project's
// `rlhf_` prefix. Thread-safe (Update takes a lock).
#ifndef RLHF_COMMON_METRICS_PROCESS_METRICS_H_
#define RLHF_COMMON_METRICS_PROCESS_METRICS_H_

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace rlhf::metrics {

class ProcessMetrics {
 public:
  // Registers (or reuses) the families in `registry`.
  explicit ProcessMetrics(prometheus::Registry& registry);
  ProcessMetrics(const ProcessMetrics&) = delete;
  ProcessMetrics& operator=(const ProcessMetrics&) = delete;

  // Reads /proc/self/stat and brings the metrics up to date. Errors: Unavailable when /proc
  // cannot be read or parsed (the metrics keep their last values).
  absl::Status Update() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  prometheus::Counter& cpu_seconds_;
  prometheus::Gauge& resident_bytes_;
  prometheus::Gauge& virtual_bytes_;
  prometheus::Gauge& threads_;
  prometheus::Gauge& start_time_;
  absl::Mutex mu_;  // Serialises updates (read-modify-write of the counter).
};

}  // namespace rlhf::metrics

#endif  // RLHF_COMMON_METRICS_PROCESS_METRICS_H_
