#include "common/metrics/process_metrics.h"

#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace rlhf::metrics {
namespace {

prometheus::Gauge& Gauge(prometheus::Registry& r, const char* name, const char* help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(r).Add({});
}

absl::StatusOr<std::string> ReadFile(const char* path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  if (!in) return absl::UnavailableError(std::string("cannot read ") + path);
  return s.str();
}

// Seconds since the epoch at boot, from /proc/stat's "btime".
absl::StatusOr<double> BootTime() {
  auto stat = ReadFile("/proc/stat");
  if (!stat.ok()) return stat.status();
  for (absl::string_view line : absl::StrSplit(*stat, '\n')) {
    double t = 0;
    if (absl::ConsumePrefix(&line, "btime ") && absl::SimpleAtod(line, &t)) return t;
  }
  return absl::UnavailableError("no btime in /proc/stat");
}

}  // namespace

ProcessMetrics::ProcessMetrics(prometheus::Registry& r)
    : cpu_seconds_(prometheus::BuildCounter()
                       .Name("rlhf_process_cpu_seconds_total")
                       .Help("User and system CPU time of the process.")
                       .Register(r)
                       .Add({})),
      resident_bytes_(Gauge(r, "rlhf_process_resident_memory_bytes", "Resident set size.")),
      virtual_bytes_(Gauge(r, "rlhf_process_virtual_memory_bytes", "Virtual memory size.")),
      threads_(Gauge(r, "rlhf_process_threads", "OS threads of the process.")),
      start_time_(Gauge(r, "rlhf_process_start_time_seconds",
                        "Start time of the process since the Unix epoch.")) {
  (void)Update();
}

absl::Status ProcessMetrics::Update() {
  auto stat = ReadFile("/proc/self/stat");
  if (!stat.ok()) return stat.status();
  // The command name (field 2) may hold spaces and parentheses: fields start after the last ')'.
  const size_t close = stat->rfind(')');
  if (close == std::string::npos) return absl::UnavailableError("bad /proc/self/stat");
  const std::vector<absl::string_view> f =
      absl::StrSplit(absl::string_view(*stat).substr(close + 2), ' ', absl::SkipEmpty());
  // f[0] is field 3 (state): field N is f[N - 3].
  auto field = [&f](int n, double* out) {
    return static_cast<int>(f.size()) > n - 3 && absl::SimpleAtod(f[n - 3], out);
  };
  double utime = 0, stime = 0, threads = 0, start_ticks = 0, vsize = 0, rss_pages = 0;
  if (!field(14, &utime) || !field(15, &stime) || !field(20, &threads) ||
      !field(22, &start_ticks) || !field(23, &vsize) || !field(24, &rss_pages)) {
    return absl::UnavailableError("bad /proc/self/stat");
  }
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  absl::MutexLock lock(&mu_);
  // From the counter's own value: several owners of one registry share the series.
  const double cpu = (utime + stime) / ticks;
  if (cpu > cpu_seconds_.Value()) cpu_seconds_.Increment(cpu - cpu_seconds_.Value());
  resident_bytes_.Set(rss_pages * page);
  virtual_bytes_.Set(vsize);
  threads_.Set(threads);
  if (start_time_.Value() == 0) {
    auto boot = BootTime();
    if (boot.ok()) start_time_.Set(*boot + start_ticks / ticks);
  }
  return absl::OkStatus();
}

}  // namespace rlhf::metrics
