// reference: serves per-token log-probs under a frozen model (rlhf.v1.Reference).
//   reference --config reference.yaml [--set model=PATH ...] [--port-file FILE]
#include <CLI/CLI.hpp>

#include "common/batching/batching_config.h"
#include "common/checkpoint/checkpoint.h"
#include "common/config/config.h"
#include "common/grpc/server.h"
#include "common/logging/logging.h"
#include "common/process/signals.h"
#include "common/runtime/runtime.h"
#include "common/status/status_macros.h"
#include "services/reference/reference_service.h"

namespace {

absl::Status Run(const std::string& config_path, const std::vector<std::string>& overrides,
                 const std::string& port_file) {
  rlhf::v1::ReferenceConfig config;
  RLHF_RETURN_IF_ERROR(rlhf::config::LoadConfig(config_path, overrides, &config));
  if (config.model().empty()) return absl::InvalidArgumentError("config: 'model' is required");
  LOG(INFO) << "effective config: " << rlhf::config::ConfigToJson(config);
  RLHF_RETURN_IF_ERROR(rlhf::runtime::InitTorchRuntime(config.threads()));
  RLHF_ASSIGN_OR_RETURN(auto model, rlhf::checkpoint::LoadModel(config.model()));
  rlhf::reference::ReferenceServiceOptions options;
  options.max_request_sequences = config.limits().max_batch();
  options.batching = rlhf::batching::BatcherOptionsFromConfig(config.batching());
  RLHF_ASSIGN_OR_RETURN(auto service, rlhf::reference::ReferenceService::Create(model, options));
  return rlhf::grpc_util::ServeUntilSignal(config.server(), {service.get()}, {"rlhf.v1.Reference"},
                                          port_file);
}

}  // namespace

int main(int argc, char** argv) {
  rlhf::process::BlockTerminationSignals();
  rlhf::logging::Init(argv[0]);
  CLI::App app{"reference: per-token log-probs under a frozen model (gRPC rlhf.v1.Reference)"};
  std::string config_path, port_file;
  std::vector<std::string> overrides;
  app.add_option("--config", config_path, "ReferenceConfig as YAML or JSON")->required();
  app.add_option("--set", overrides, "override a config field: path.to.field=value");
  app.add_option("--port-file", port_file, "write the bound gRPC port here once serving");
  CLI11_PARSE(app, argc, argv);
  if (absl::Status s = Run(config_path, overrides, port_file); !s.ok()) {
    LOG(ERROR) << s;
    return 1;
  }
  return 0;
}
