// Server bring-up for every service, in one place: listening address (port 0 = OS-chosen),
// message size limits, gRPC's health service, and shutdown with a deadline.
#ifndef RLHF_COMMON_GRPC_SERVER_H_
#define RLHF_COMMON_GRPC_SERVER_H_

#include <grpcpp/grpcpp.h>
#include <prometheus/registry.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "rlhf/v1/config.pb.h"

namespace rlhf::grpc_util {

struct ServerOptions {
  /// host:port to listen on; port 0 lets the OS choose.
  std::string listen_address = "127.0.0.1:0";
  /// Largest request/response message in bytes.
  int max_message_bytes = 64 << 20;
  /// How long Shutdown() waits for in-flight RPCs before cancelling them.
  absl::Duration shutdown_grace = absl::Seconds(5);
  /// When set, every RPC is counted and timed into this registry (rlhf_rpc_* families).
  std::shared_ptr<prometheus::Registry> metrics;
};

absl::Status Validate(const ServerOptions& options);

// ServerOptions from the typed config.
ServerOptions ServerOptionsFromConfig(const rlhf::v1::ServerConfig& config);

// A running gRPC server. Thread-safe.
class Server {
 public:
  // Starts a server with `services` (not owned; they must outlive the server) and the health
  // service, which reports SERVING for "" and for each service's full name. Errors:
  // InvalidArgument for bad options, Unavailable when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<Server>> Start(
      const ServerOptions& options, const std::vector<::grpc::Service*>& services,
      const std::vector<std::string>& service_names);

  ~Server();  // Shuts down if still running.
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The port actually bound and "host:port" to dial.
  int port() const { return port_; }
  std::string address() const;

  // Marks every service NOT_SERVING (e.g. while draining), or SERVING again.
  void SetServing(bool serving);

  // Stops accepting RPCs, waits up to shutdown_grace for in-flight ones, then cancels them.
  // Idempotent.
  void Shutdown();

 private:
  Server(std::unique_ptr<::grpc::Server> server, int port, ServerOptions options,
         std::vector<std::string> names);

  std::unique_ptr<::grpc::Server> server_;
  const int port_;
  const ServerOptions options_;
  const std::vector<std::string> names_;
  std::once_flag shutdown_once_;
};

// Starts a server for `services` with RPC metrics in `registry`, and /metrics on
// config.metrics_port (-1 = off, 0 = OS-chosen) of the same host; logs both addresses; writes
// the gRPC port and then the metrics port, one per line, to `port_file` (when not empty);
// calls `on_serving` (when set); blocks until SIGINT/SIGTERM and shuts down with the configured
// grace. The common tail of every service's main(). REQUIRES: process::BlockTerminationSignals().
absl::Status ServeUntilSignal(const rlhf::v1::ServerConfig& config,
                              std::shared_ptr<prometheus::Registry> registry,
                              const std::vector<::grpc::Service*>& services,
                              const std::vector<std::string>& service_names,
                              const std::string& port_file,
                              const std::function<void()>& on_serving = {});

// An insecure channel to `address` with our message size limits.
std::shared_ptr<::grpc::Channel> CreateChannel(const std::string& address,
                                               int max_message_bytes = 64 << 20);

// Polls the health service of `channel` until `service` reports SERVING or `deadline` passes
// (DeadlineExceeded). Uses gRPC's wait-for-ready, not sleeps.
absl::Status WaitForServing(const std::shared_ptr<::grpc::Channel>& channel,
                            const std::string& service, absl::Time deadline);

}  // namespace rlhf::grpc_util

#endif  // RLHF_COMMON_GRPC_SERVER_H_
