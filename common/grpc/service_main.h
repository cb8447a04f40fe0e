// The shared main() of every service binary:
//   <service> --config FILE [--set path.to.field=value ...] [--port-file FILE]
// blocks termination signals (so ServeUntilSignal can wait for them), initialises logging,
// parses the flags (--help, unknown flags and missing --config are errors), runs `run`, and
// turns its status into the exit code (0, or 1 with the error logged).
#ifndef RLHF_COMMON_GRPC_SERVICE_MAIN_H_
#define RLHF_COMMON_GRPC_SERVICE_MAIN_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace rlhf::grpc_util {

struct ServiceArgs {
  std::string config_path;
  std::vector<std::string> overrides;
  std::string port_file;
};

int ServiceMain(int argc, char** argv, const std::string& description,
                const std::function<absl::Status(const ServiceArgs&)>& run);

}  // namespace rlhf::grpc_util

#endif  // RLHF_COMMON_GRPC_SERVICE_MAIN_H_
