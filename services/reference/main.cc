// reference: serves per-token log-probs under a frozen model (rlhf.v1.Reference).
//   reference --config reference.yaml [--set model=PATH ...] [--port-file FILE]
#include "common/batching/batching_config.h"
#include "common/checkpoint/checkpoint.h"
#include "common/config/config.h"
#include "common/grpc/server.h"
#include "common/grpc/service_main.h"
#include "common/logging/logging.h"
#include "common/metrics/batcher_metrics.h"
#include "common/runtime/runtime.h"
#include "common/status/status_macros.h"
#include "services/reference/reference_service.h"

namespace {

absl::Status Run(const rlhf::grpc_util::ServiceArgs& args) {
  rlhf::v1::ReferenceConfig config;
  RLHF_RETURN_IF_ERROR(rlhf::config::LoadConfig(args.config_path, args.overrides, &config));
  if (config.model().empty()) return absl::InvalidArgumentError("config: 'model' is required");
  auto registry = std::make_shared<prometheus::Registry>();
  LOG(INFO) << "effective config: " << rlhf::config::ConfigToJson(config);
  RLHF_RETURN_IF_ERROR(rlhf::runtime::InitTorchRuntime(config.threads()));
  // Models load here; the torch work runs on other threads (see the function).
  rlhf::runtime::MakeThisThreadSerial();
  RLHF_ASSIGN_OR_RETURN(auto model, rlhf::checkpoint::LoadModel(config.model()));
  rlhf::reference::ReferenceServiceOptions options;
  options.max_request_sequences = config.limits().max_batch();
  options.batching = rlhf::batching::BatcherOptionsFromConfig(config.batching());
  rlhf::metrics::BatcherMetrics batcher_metrics(*registry, "reference", options.batching.max_batch);
  options.batching.observer = &batcher_metrics;
  RLHF_ASSIGN_OR_RETURN(auto service, rlhf::reference::ReferenceService::Create(model, options));
  return rlhf::grpc_util::ServeUntilSignal(config.server(), registry, {service.get()},
                                           {"rlhf.v1.Reference"}, args.port_file);
}

}  // namespace

int main(int argc, char** argv) {
  return rlhf::grpc_util::ServiceMain(
      argc, argv, "reference: per-token log-probs under a frozen model (gRPC rlhf.v1.Reference)",
      Run);
}
