#include "common/metrics/metrics_server.h"

#include <httplib.h>
#include <prometheus/text_serializer.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "common/metrics/process_metrics.h"

namespace rlhf::metrics {

struct MetricsServer::Impl {
  std::unique_ptr<ProcessMetrics> process;
  httplib::Server http;
  std::thread thread;
};

std::string Serialize(prometheus::Registry& registry) {
  return prometheus::TextSerializer().Serialize(registry.Collect());
}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    std::shared_ptr<prometheus::Registry> registry, const std::string& host, int port) {
  auto impl = std::make_unique<Impl>();
  impl->process = std::make_unique<ProcessMetrics>(*registry);
  ProcessMetrics* process = impl->process.get();
  impl->http.Get("/metrics", [registry, process](const httplib::Request&, httplib::Response& res) {
    (void)process->Update();  // On failure the process metrics keep their last values.
    res.set_content(Serialize(*registry), "text/plain; version=0.0.4; charset=utf-8");
  });
  const int bound = port == 0 ? impl->http.bind_to_any_port(host)
                              : (impl->http.bind_to_port(host, port) ? port : -1);
  if (bound <= 0) {
    return absl::UnavailableError(absl::StrCat("metrics: cannot listen on ", host, ":", port));
  }
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->http.listen_after_bind(); });
  // stop() is a no-op until the server runs; wait for it so the destructor can always stop it.
  while (!impl->http.is_running()) std::this_thread::yield();
  return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(impl), bound));
}

MetricsServer::MetricsServer(std::unique_ptr<Impl> impl, int port)
    : impl_(std::move(impl)), port_(port) {}

MetricsServer::~MetricsServer() {
  impl_->http.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace rlhf::metrics
