// `rlhf check-config`: validates a service's config file (YAML or JSON, with `--set`
// overrides) against its typed schema exactly as the service will read it at start, without
// loading models or opening ports. Used by the Kubernetes manifest tests on every config in the
// ConfigMap, and by hand before a deploy.
//
//   rlhf check-config --service learner deploy/k8s/base/config/learner.yaml
#ifndef RLHF_CLI_CHECK_CONFIG_COMMAND_H_
#define RLHF_CLI_CHECK_CONFIG_COMMAND_H_

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace rlhf::cli {

struct CheckConfigArgs {
  std::string service;  // learner | rollout | reward | reference | local
  std::vector<std::string> files;
  std::vector<std::string> overrides;
  bool print = false;  // print the effective config as JSON
};

CLI::App* AddCheckConfigCommand(CLI::App& app, CheckConfigArgs& args);

// Checks every file; prints "<file>: ok" per valid file. Errors: the first invalid file's
// problem (InvalidArgument / NotFound, naming the file, key and line).
absl::Status RunCheckConfig(const CheckConfigArgs& args);

}  // namespace rlhf::cli

#endif  // RLHF_CLI_CHECK_CONFIG_COMMAND_H_
