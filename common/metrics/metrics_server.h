// Prometheus metrics for every process: prometheus-cpp core for the registry and the text
// format; /metrics served by cpp-httplib (prometheus-cpp's civetweb Exposer cannot start its
// threads in a process that also loads LibTorch + OpenBLAS + glog: their static TLS leaves no
// room in civetweb's 100 KB stacks).
#ifndef RLHF_COMMON_METRICS_METRICS_SERVER_H_
#define RLHF_COMMON_METRICS_METRICS_SERVER_H_

#include <prometheus/registry.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace rlhf::metrics {

// Serves GET /metrics (text exposition format 0.0.4) for one registry on a thread of its own,
// with this process's resource use (ProcessMetrics, registered in the registry) read at each
// scrape. Thread-safe.
class MetricsServer {
 public:
  // Listens on host:port (port 0 = OS-chosen). Errors: Unavailable when the port cannot be
  // bound.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      std::shared_ptr<prometheus::Registry> registry, const std::string& host, int port);
  ~MetricsServer();  // Stops serving and joins the thread.
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  int port() const { return port_; }

 private:
  struct Impl;
  MetricsServer(std::unique_ptr<Impl> impl, int port);
  std::unique_ptr<Impl> impl_;
  const int port_;
};

// The registry's current contents in the text exposition format.
std::string Serialize(prometheus::Registry& registry);

}  // namespace rlhf::metrics

#endif  // RLHF_COMMON_METRICS_METRICS_SERVER_H_
