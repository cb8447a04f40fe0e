// reward: scores (prompt, response) pairs with rules or a scalar-head model (rlhf.v1.Reward).
//   reward --config reward.yaml [--set key=value ...] [--port-file FILE]
#include "common/batching/batching_config.h"
#include "common/config/config.h"
#include "common/grpc/server.h"
#include "common/grpc/service_main.h"
#include "common/logging/logging.h"
#include "common/metrics/batcher_metrics.h"
#include "common/runtime/runtime.h"
#include "common/status/status_macros.h"
#include "services/reward/reward_service.h"

namespace {

absl::Status Run(const rlhf::grpc_util::ServiceArgs& args) {
  rlhf::v1::RewardConfig config;
  RLHF_RETURN_IF_ERROR(rlhf::config::LoadConfig(args.config_path, args.overrides, &config));
  auto registry = std::make_shared<prometheus::Registry>();
  LOG(INFO) << "effective config: " << rlhf::config::ConfigToJson(config);
  RLHF_RETURN_IF_ERROR(rlhf::runtime::InitTorchRuntime(config.threads()));
  // Models load here; the torch work runs on other threads (see the function).
  rlhf::runtime::MakeThisThreadSerial();
  RLHF_ASSIGN_OR_RETURN(auto scorer, rlhf::reward::CreateScorer(config));
  rlhf::reward::RewardServiceOptions options;
  options.max_request_items = config.limits().max_batch();
  options.max_text_bytes = config.limits().max_text_bytes();
  options.batching = rlhf::batching::BatcherOptionsFromConfig(config.batching());
  rlhf::metrics::BatcherMetrics batcher_metrics(*registry, "reward", options.batching.max_batch);
  options.batching.observer = &batcher_metrics;
  RLHF_ASSIGN_OR_RETURN(auto service,
                        rlhf::reward::RewardService::Create(std::move(scorer), options));
  return rlhf::grpc_util::ServeUntilSignal(config.server(), registry, {service.get()},
                                           {"rlhf.v1.Reward"}, args.port_file);
}

}  // namespace

int main(int argc, char** argv) {
  return rlhf::grpc_util::ServiceMain(
      argc, argv, "reward: scores (prompt, response) pairs (gRPC rlhf.v1.Reward)", Run);
}
