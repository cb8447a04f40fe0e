// A service binary run as a child process, the way the local launcher and the end-to-end tests
// run them: `<binary> --config FILE [--set k=v ...] --port-file /dev/stdout`, stderr appended to
// a log file, the gRPC and metrics ports read from the child's first two stdout lines, then the
// health service polled until SERVING (no sleeps). Later stdout lines (the learner's step
// events) are read with ReadLine.
//
// Not thread-safe; one owner.
#ifndef RLHF_COMMON_LAUNCH_SERVICE_PROCESS_H_
#define RLHF_COMMON_LAUNCH_SERVICE_PROCESS_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/process/subprocess.h"

namespace rlhf::launch {

struct ServiceProcessOptions {
  /// A name for logs and errors ("learner", "rollout-1").
  std::string name;
  /// The program and its config file.
  std::string binary;
  std::string config_path;
  /// `--set key=value` overrides.
  std::vector<std::string> overrides;
  /// Where the child's stderr (its log) goes; appended.
  std::string log_path;
  /// The gRPC service whose health is awaited ("rlhf.v1.Learner").
  std::string health_service;
  /// How long the start (ports + SERVING) may take.
  absl::Duration start_timeout = absl::Seconds(120);
  /// Extra environment variables of the child (e.g. a learner rank's RANK, WORLD_SIZE, ...).
  std::vector<std::pair<std::string, std::string>> env;
};

class ServiceProcess {
 public:
  // Starts the child and waits until it serves. Errors: the child's failure to start, exit or
  // timeout, with the tail of its log in the message.
  static absl::StatusOr<std::unique_ptr<ServiceProcess>> Start(
      const ServiceProcessOptions& options);
  // Starts the child without waiting: for processes that only serve once their peers have
  // started too (the ranks of a learner join their group first). Then AwaitServing().
  static absl::StatusOr<std::unique_ptr<ServiceProcess>> Launch(
      const ServiceProcessOptions& options);
  // Waits until a Launch()ed child serves (its ports read, its health SERVING). Errors as
  // Start's. REQUIRES: called once.
  absl::Status AwaitServing();
  ~ServiceProcess();  // SIGKILLs a child still running (Subprocess).
  ServiceProcess(const ServiceProcess&) = delete;
  ServiceProcess& operator=(const ServiceProcess&) = delete;

  const std::string& name() const { return options_.name; }
  const std::string& log_path() const { return options_.log_path; }
  int port() const { return port_; }
  int metrics_port() const { return metrics_port_; }
  // "127.0.0.1:<port>".
  std::string address() const;
  std::shared_ptr<::grpc::Channel> channel() const { return channel_; }
  process::Subprocess& process() { return *process_; }

  // The next stdout line (see Subprocess::ReadLine).
  absl::StatusOr<std::string> ReadLine(absl::Duration timeout) {
    return process_->ReadLine(timeout);
  }
  // Exit code if the child has exited, nullopt-like DeadlineExceeded while it runs.
  absl::StatusOr<int> Poll() { return process_->Wait(absl::ZeroDuration()); }
  // SIGTERM, then SIGKILL after `grace`; returns the exit code (128 + signal when killed).
  absl::StatusOr<int> Stop(absl::Duration grace);

 private:
  ServiceProcess(ServiceProcessOptions options, std::unique_ptr<process::Subprocess> process)
      : options_(std::move(options)), process_(std::move(process)) {}
  absl::Status AwaitPortsAndHealth();

  const ServiceProcessOptions options_;
  const std::unique_ptr<process::Subprocess> process_;
  int port_ = 0;
  int metrics_port_ = -1;
  std::shared_ptr<::grpc::Channel> channel_;
};

// The service binary `name` ("learner", "rollout", ...): in `bin_dir` when set, else next to this
// executable (installed layout) or in the build tree's services/<name>/ beside cli/. NotFound
// names where it looked.
absl::StatusOr<std::string> FindServiceBinary(const std::string& bin_dir, const std::string& name);

// The last `max_lines` lines of the file at `path` ("" when unreadable).
std::string TailOfFile(const std::string& path, int max_lines = 20);

}  // namespace rlhf::launch

#endif  // RLHF_COMMON_LAUNCH_SERVICE_PROCESS_H_
