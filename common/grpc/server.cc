#include "common/grpc/server.h"

#include <grpcpp/health_check_service_interface.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/grpc/status_util.h"
#include "common/logging/logging.h"
#include "common/metrics/metrics_server.h"
#include "common/metrics/rpc_metrics.h"
#include "common/process/signals.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace rlhf::grpc_util {

absl::Status Validate(const ServerOptions& o) {
  if (o.listen_address.empty() || o.listen_address.find(':') == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("listen_address must be host:port, got '", o.listen_address, "'"));
  }
  if (o.max_message_bytes <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_message_bytes must be > 0, got ", o.max_message_bytes));
  }
  if (o.shutdown_grace < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("shutdown_grace must be >= 0");
  }
  return absl::OkStatus();
}

ServerOptions ServerOptionsFromConfig(const rlhf::v1::ServerConfig& c) {
  ServerOptions o;
  o.listen_address = c.listen_address();
  o.max_message_bytes = c.max_message_bytes();
  o.shutdown_grace = absl::Milliseconds(static_cast<int64_t>(c.shutdown_grace_seconds() * 1000));
  return o;
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(
    const ServerOptions& options, const std::vector<::grpc::Service*>& services,
    const std::vector<std::string>& service_names) {
  if (absl::Status s = Validate(options); !s.ok()) return s;
  ::grpc::EnableDefaultHealthCheckService(true);
  ::grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options.listen_address, ::grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  for (::grpc::Service* service : services) builder.RegisterService(service);
  if (options.metrics != nullptr) {
    std::vector<std::unique_ptr<::grpc::experimental::ServerInterceptorFactoryInterface>> f;
    f.push_back(metrics::MakeRpcMetricsFactory(*options.metrics));
    builder.experimental().SetInterceptorCreators(std::move(f));
  }
  std::unique_ptr<::grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen_address, " (address in use?)"));
  }
  auto out = std::unique_ptr<Server>(new Server(std::move(server), port, options, service_names));
  out->SetServing(true);
  return out;
}

Server::Server(std::unique_ptr<::grpc::Server> server, int port, ServerOptions options,
               std::vector<std::string> names)
    : server_(std::move(server)),
      port_(port),
      options_(std::move(options)),
      names_(std::move(names)) {}

Server::~Server() { Shutdown(); }

std::string Server::address() const {
  const std::string& a = options_.listen_address;
  std::string host = a.substr(0, a.rfind(':'));
  if (host.empty() || host == "0.0.0.0" || host == "[::]") host = "127.0.0.1";
  return absl::StrCat(host, ":", port_);
}

void Server::SetServing(bool serving) {
  auto* health = server_->GetHealthCheckService();
  if (health == nullptr) return;
  health->SetServingStatus("", serving);
  for (const auto& name : names_) health->SetServingStatus(name, serving);
}

void Server::Shutdown() {
  std::call_once(shutdown_once_, [this] {
    SetServing(false);
    server_->Shutdown(absl::ToChronoTime(absl::Now() + options_.shutdown_grace));
    server_->Wait();
  });
}

absl::Status ServeUntilSignal(const rlhf::v1::ServerConfig& config,
                              std::shared_ptr<prometheus::Registry> registry,
                              const std::vector<::grpc::Service*>& services,
                              const std::vector<std::string>& service_names,
                              const std::string& port_file,
                              const std::function<void()>& on_serving) {
  ServerOptions options = ServerOptionsFromConfig(config);
  options.metrics = registry;
  auto server = Server::Start(options, services, service_names);
  if (!server.ok()) return server.status();
  LOG(INFO) << absl::StrJoin(service_names, ", ") << " serving on " << (*server)->address();
  std::unique_ptr<metrics::MetricsServer> metrics_server;
  if (config.metrics_port() >= 0) {
    const std::string& a = config.listen_address();
    auto m =
        metrics::MetricsServer::Start(registry, a.substr(0, a.rfind(':')), config.metrics_port());
    if (!m.ok()) return m.status();
    metrics_server = std::move(*m);
    LOG(INFO) << "metrics on port " << metrics_server->port() << " (/metrics)";
  }
  if (!port_file.empty()) {
    std::ofstream out(port_file);
    out << (*server)->port() << "\n" << (metrics_server ? metrics_server->port() : -1) << "\n";
    if (!out) return absl::InternalError(absl::StrCat("cannot write port file ", port_file));
  }
  if (on_serving) on_serving();
  const int sig = process::WaitForTerminationSignal();
  LOG(INFO) << "signal " << sig << ": shutting down";
  (*server)->Shutdown();
  return absl::OkStatus();
}

std::shared_ptr<::grpc::Channel> CreateChannel(const std::string& address, int max_message_bytes) {
  ::grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(max_message_bytes);
  args.SetMaxSendMessageSize(max_message_bytes);
  return ::grpc::CreateCustomChannel(address, ::grpc::InsecureChannelCredentials(), args);
}

absl::Status WaitForServing(const std::shared_ptr<::grpc::Channel>& channel,
                            const std::string& service, absl::Time deadline) {
  auto stub = ::grpc::health::v1::Health::NewStub(channel);
  ::grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  absl::Status last = absl::DeadlineExceededError("no answer");
  while (absl::Now() < deadline) {
    ::grpc::ClientContext ctx;
    // Wait-for-ready blocks until the channel connects (or the per-try deadline passes).
    ctx.set_wait_for_ready(true);
    ctx.set_deadline(absl::ToChronoTime(std::min(deadline, absl::Now() + absl::Seconds(1))));
    ::grpc::health::v1::HealthCheckResponse response;
    ::grpc::Status s = stub->Check(&ctx, request, &response);
    if (s.ok() && response.status() == ::grpc::health::v1::HealthCheckResponse::SERVING) {
      return absl::OkStatus();
    }
    last = s.ok() ? absl::UnavailableError("NOT_SERVING") : FromGrpcStatus(s);
    if (s.ok()) {
      // Served but not ready: wait for a state change rather than spinning.
      channel->WaitForStateChange(channel->GetState(false),
                                  absl::ToChronoTime(absl::Now() + absl::Milliseconds(50)));
    }
  }
  return absl::DeadlineExceededError(
      absl::StrCat("service '", service, "' not SERVING before the deadline: ", last.message()));
}

}  // namespace rlhf::grpc_util
