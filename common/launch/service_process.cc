#include "common/launch/service_process.h"

#include <signal.h>
#include <unistd.h>

#include <deque>
#include <filesystem>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/grpc/server.h"
#include "common/status/status_macros.h"

namespace rlhf::launch {

namespace fs = std::filesystem;

std::string TailOfFile(const std::string& path, int max_lines) {
  std::ifstream in(path);
  std::deque<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    lines.push_back(line);
    if (static_cast<int>(lines.size()) > max_lines) lines.pop_front();
  }
  return absl::StrJoin(lines, "\n");
}

absl::StatusOr<std::unique_ptr<ServiceProcess>> ServiceProcess::Start(
    const ServiceProcessOptions& options) {
  RLHF_ASSIGN_OR_RETURN(std::unique_ptr<ServiceProcess> p, Launch(options));
  RLHF_RETURN_IF_ERROR(p->AwaitServing());
  return p;
}

absl::StatusOr<std::unique_ptr<ServiceProcess>> ServiceProcess::Launch(
    const ServiceProcessOptions& options) {
  std::vector<std::string> argv = {options.binary, "--config", options.config_path, "--port-file",
                                   "/dev/stdout"};
  for (const std::string& o : options.overrides) {
    argv.push_back("--set");
    argv.push_back(o);
  }
  process::SubprocessOptions sub;
  sub.stderr_path = options.log_path;
  sub.env = options.env;
  auto child = process::Subprocess::Start(argv, sub);
  if (!child.ok()) {
    return absl::Status(child.status().code(),
                        absl::StrCat(options.name, ": ", child.status().message()));
  }
  return std::unique_ptr<ServiceProcess>(new ServiceProcess(options, std::move(*child)));
}

absl::Status ServiceProcess::AwaitServing() {
  if (absl::Status s = AwaitPortsAndHealth(); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat(options_.name, " did not start: ", s.message(),
                                               "\n--- last lines of ", options_.log_path, ":\n",
                                               TailOfFile(options_.log_path)));
  }
  return absl::OkStatus();
}

absl::Status ServiceProcess::AwaitPortsAndHealth() {
  const absl::Time deadline = absl::Now() + options_.start_timeout;
  for (int* port : {&port_, &metrics_port_}) {
    auto line = process_->ReadLine(deadline - absl::Now());
    if (!line.ok()) {
      return absl::IsOutOfRange(line.status())
                 ? absl::UnavailableError("exited before reporting its ports")
                 : line.status();
    }
    if (!absl::SimpleAtoi(*line, port)) {
      return absl::InternalError(absl::StrCat("expected a port on stdout, got '", *line, "'"));
    }
  }
  channel_ = grpc_util::CreateChannel(address());
  return grpc_util::WaitForServing(channel_, options_.health_service, deadline);
}

ServiceProcess::~ServiceProcess() = default;

std::string ServiceProcess::address() const { return absl::StrCat("127.0.0.1:", port_); }

absl::StatusOr<int> ServiceProcess::Stop(absl::Duration grace) {
  process_->Signal(SIGTERM);
  auto code = process_->Wait(grace);
  if (code.ok()) return code;
  process_->Signal(SIGKILL);
  return process_->Wait(absl::Seconds(10));
}

absl::StatusOr<std::string> FindServiceBinary(const std::string& bin_dir, const std::string& name) {
  std::vector<fs::path> candidates;
  if (!bin_dir.empty()) {
    candidates.push_back(fs::path(bin_dir) / name);
  } else {
    std::error_code ec;
    const fs::path self = fs::read_symlink("/proc/self/exe", ec);
    if (ec) return absl::InternalError("cannot find this executable's directory");
    candidates.push_back(self.parent_path() / name);
    candidates.push_back(self.parent_path().parent_path() / "services" / name / name);
  }
  for (const fs::path& p : candidates) {
    if (access(p.c_str(), X_OK) == 0) return p.string();
  }
  return absl::NotFoundError(absl::StrCat("no '", name, "' binary at ", candidates.front().string(),
                                          bin_dir.empty() ? " or in the build tree" : ""));
}


}  // namespace rlhf::launch
