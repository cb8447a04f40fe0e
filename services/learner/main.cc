// learner: owns policy, critic and optimizer; leases prompts to rollout workers, trains with PPO
// on the trajectories they stream, publishes each new policy version, writes checkpoints.
//   learner --config learner.yaml [--set key=value ...] [--port-file FILE]
// Prints one JSON line per PPO step on stdout (after the port lines when --port-file is
// /dev/stdout), then {"event": "done", ...}, and exits 0 after total_steps. SIGTERM stops it
// after the current step, with a checkpoint when checkpoint_dir is set.
#include <iostream>

#include "common/config/config.h"
#include "common/grpc/server.h"
#include "common/grpc/service_main.h"
#include "common/logging/logging.h"
#include "common/process/signals.h"
#include "common/runtime/runtime.h"
#include "common/status/status_macros.h"
#include "services/learner/learner.h"

namespace {

absl::Status Run(const rlhf::grpc_util::ServiceArgs& args) {
  rlhf::v1::LearnerConfig config;
  RLHF_RETURN_IF_ERROR(rlhf::config::LoadConfig(args.config_path, args.overrides, &config));
  RLHF_RETURN_IF_ERROR(rlhf::learner::ValidateLearnerConfig(config));
  LOG(INFO) << "effective config: " << rlhf::config::ConfigToJson(config);
  RLHF_RETURN_IF_ERROR(rlhf::runtime::InitTorchRuntime(config.threads()));
  // Models load here; the torch work runs on other threads (see the function).
  rlhf::runtime::MakeThisThreadSerial();
  auto registry = std::make_shared<prometheus::Registry>();
  RLHF_ASSIGN_OR_RETURN(auto learner, rlhf::learner::Learner::Create(config, *registry));
  RLHF_RETURN_IF_ERROR(rlhf::grpc_util::ServeUntilSignal(
      config.server(), registry, {learner->service()}, {"rlhf.v1.Learner"}, args.port_file,
      [&learner] {
        learner->Start(
            [](const nlohmann::json& event) { std::cout << event.dump() << std::endl; },
            rlhf::process::RequestTermination);
      }));
  learner->Stop();
  return learner->Wait();
}

}  // namespace

int main(int argc, char** argv) {
  return rlhf::grpc_util::ServiceMain(
      argc, argv, "learner: PPO on trajectories from rollout workers (gRPC rlhf.v1.Learner)", Run);
}
