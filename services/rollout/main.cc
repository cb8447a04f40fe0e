// rollout: the rollout worker. Today it serves Generate for jobs (rlhf.v1.Rollout); the PPO
// loop (lease, generate, score, push) lands with the learner.
//   rollout --config rollout.yaml [--set key=value ...] [--port-file FILE]
#include "common/batching/batching_config.h"
#include "common/checkpoint/checkpoint.h"
#include "common/config/config.h"
#include "common/grpc/server.h"
#include "common/grpc/service_main.h"
#include "common/logging/logging.h"
#include "common/runtime/runtime.h"
#include "common/status/status_macros.h"
#include "services/rollout/rollout_service.h"

namespace {

absl::Status Run(const rlhf::grpc_util::ServiceArgs& args) {
  rlhf::v1::RolloutConfig config;
  RLHF_RETURN_IF_ERROR(rlhf::config::LoadConfig(args.config_path, args.overrides, &config));
  if (config.model().empty()) return absl::InvalidArgumentError("config: 'model' is required");
  auto registry = std::make_shared<prometheus::Registry>();
  LOG(INFO) << "effective config: " << rlhf::config::ConfigToJson(config);
  RLHF_RETURN_IF_ERROR(rlhf::runtime::InitTorchRuntime(config.threads()));
  RLHF_ASSIGN_OR_RETURN(auto model, rlhf::checkpoint::LoadModel(config.model()));
  RLHF_ASSIGN_OR_RETURN(auto engine, rlhf::model::GenerationEngine::Create(model));
  std::unique_ptr<rlhf::tokenizer::Tokenizer> tokenizer;
  if (!config.tokenizer().empty()) {
    RLHF_ASSIGN_OR_RETURN(tokenizer, rlhf::tokenizer::LoadTokenizer(config.tokenizer()));
  }
  rlhf::rollout::RolloutServiceOptions options;
  options.max_request_prompts = config.limits().max_batch();
  options.batching = rlhf::batching::BatcherOptionsFromConfig(config.batching());
  RLHF_ASSIGN_OR_RETURN(
      auto service, rlhf::rollout::RolloutService::Create(std::move(engine), std::move(tokenizer),
                                                          /*policy_version=*/0, options));
  return rlhf::grpc_util::ServeUntilSignal(config.server(), registry, {service.get()},
                                           {"rlhf.v1.Rollout"}, args.port_file);
}

}  // namespace

int main(int argc, char** argv) {
  return rlhf::grpc_util::ServiceMain(
      argc, argv, "rollout: generation with the policy (gRPC rlhf.v1.Rollout)", Run);
}
