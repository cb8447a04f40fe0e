// rollout: the rollout worker. Serves Generate for jobs (rlhf.v1.Rollout) and, when
// worker.learner is set, runs the PPO loop (lease, generate, score, push; worker.h).
//   rollout --config rollout.yaml [--set key=value ...] [--port-file FILE]
#include <unistd.h>

#include <climits>

#include "absl/strings/str_cat.h"
#include "common/batching/batching_config.h"
#include "common/checkpoint/checkpoint.h"
#include "common/config/config.h"
#include "common/grpc/server.h"
#include "common/grpc/service_main.h"
#include "common/logging/logging.h"
#include "common/metrics/batcher_metrics.h"
#include "common/runtime/runtime.h"
#include "common/status/status_macros.h"
#include "services/rollout/rollout_service.h"
#include "services/rollout/worker.h"

namespace {

std::string DefaultWorkerId() {
  char host[HOST_NAME_MAX + 1] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  return absl::StrCat(host[0] != '\0' ? host : "worker", "-", getpid());
}

// The PPO loop's worker when the config names a learner; null otherwise.
absl::StatusOr<std::unique_ptr<rlhf::rollout::RolloutWorker>> MaybeCreateWorker(
    const rlhf::v1::RolloutConfig& config, std::shared_ptr<rlhf::rollout::PolicyHolder> policy,
    prometheus::Registry& registry) {
  if (config.worker().learner().empty()) return nullptr;
  rlhf::rollout::WorkerOptions options = rlhf::rollout::WorkerOptionsFromConfig(config.worker());
  if (options.worker_id.empty()) options.worker_id = DefaultWorkerId();
  options.max_message_bytes = config.server().max_message_bytes();
  if (options.reward_address.empty() || options.reference_address.empty()) {
    return absl::InvalidArgumentError(
        "config: 'worker.reward' and 'worker.reference' are required when 'worker.learner' is set");
  }
  std::unique_ptr<rlhf::tokenizer::Tokenizer> tokenizer;
  if (!config.tokenizer().empty()) {
    RLHF_ASSIGN_OR_RETURN(tokenizer, rlhf::tokenizer::LoadTokenizer(config.tokenizer()));
  }
  return rlhf::rollout::RolloutWorker::Create(options, std::move(policy), std::move(tokenizer),
                                              registry);
}

absl::Status Run(const rlhf::grpc_util::ServiceArgs& args) {
  rlhf::v1::RolloutConfig config;
  RLHF_RETURN_IF_ERROR(rlhf::config::LoadConfig(args.config_path, args.overrides, &config));
  if (config.model().empty()) return absl::InvalidArgumentError("config: 'model' is required");
  auto registry = std::make_shared<prometheus::Registry>();
  LOG(INFO) << "effective config: " << rlhf::config::ConfigToJson(config);
  RLHF_RETURN_IF_ERROR(rlhf::runtime::InitTorchRuntime(config.threads()));
  // Models load here; the torch work runs on other threads (see the function).
  rlhf::runtime::MakeThisThreadSerial();
  RLHF_ASSIGN_OR_RETURN(auto model, rlhf::checkpoint::LoadModel(config.model()));
  // With a learner, the checkpoint's version is unknown (-1) until the first sync; without
  // one, it is the only version there is (0).
  const int64_t version = config.worker().learner().empty() ? 0 : -1;
  RLHF_ASSIGN_OR_RETURN(auto policy, rlhf::rollout::PolicyHolder::Create(model, version));
  RLHF_ASSIGN_OR_RETURN(auto worker, MaybeCreateWorker(config, policy, *registry));
  std::unique_ptr<rlhf::tokenizer::Tokenizer> tokenizer;
  if (!config.tokenizer().empty()) {
    RLHF_ASSIGN_OR_RETURN(tokenizer, rlhf::tokenizer::LoadTokenizer(config.tokenizer()));
  }
  rlhf::rollout::RolloutServiceOptions options;
  options.max_request_prompts = config.limits().max_batch();
  options.batching = rlhf::batching::BatcherOptionsFromConfig(config.batching());
  rlhf::metrics::BatcherMetrics batcher_metrics(*registry, "generate", options.batching.max_batch);
  options.batching.observer = &batcher_metrics;
  RLHF_ASSIGN_OR_RETURN(
      auto service, rlhf::rollout::RolloutService::Create(policy, std::move(tokenizer), options));
  // The loop starts once Generate is serving, and stops (returning its lease, waiting for
  // acks) within the shutdown grace after the signal.
  absl::Status served = rlhf::grpc_util::ServeUntilSignal(
      config.server(), registry, {service.get()}, {"rlhf.v1.Rollout"}, args.port_file, [&worker] {
        if (worker != nullptr) worker->Start();
      });
  if (worker != nullptr) {
    worker->Stop(absl::Seconds(config.server().shutdown_grace_seconds()));
  }
  return served;
}

}  // namespace

int main(int argc, char** argv) {
  return rlhf::grpc_util::ServiceMain(
      argc, argv, "rollout: generation and the PPO loop (gRPC rlhf.v1.Rollout)", Run);
}
