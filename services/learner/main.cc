// learner: owns policy, critic and optimizer; leases prompts to rollout workers, trains with PPO
// on the trajectories they stream, publishes each new policy version, writes checkpoints.
//   learner --config learner.yaml [--set key=value ...] [--port-file FILE]
// Prints one JSON line per PPO step on stdout (after the port lines when --port-file is
// /dev/stdout), then {"event": "done", ...}, and exits 0 after total_steps. SIGTERM stops it
// after the current step, with a checkpoint when checkpoint_dir is set.
//
// Several ranks (data-parallel): start one process per rank with the torchrun variables RANK,
// WORLD_SIZE, MASTER_ADDR, MASTER_PORT (see common/dist/dist_options.h) and the same config.
// Rank 0 is the learner above; the others train their share of each batch (learner_ranks.h),
// serve only gRPC health (SERVING for "rlhf.v1.Learner" too) and /metrics, and exit 0 when rank 0
// ends the run (a SIGTERM to them alone waits for that).
#include <iostream>
#include <thread>

#include "common/config/config.h"
#include "common/dist/dist_options.h"
#include "common/dist/process_group.h"
#include "common/grpc/server.h"
#include "common/grpc/service_main.h"
#include "common/logging/logging.h"
#include "common/process/signals.h"
#include "common/runtime/runtime.h"
#include "common/status/status_macros.h"
#include "rlhf/v1/services.grpc.pb.h"
#include "services/learner/learner.h"
#include "services/learner/learner_ranks.h"

namespace {

// What ranks > 0 register: the Learner service with every RPC UNIMPLEMENTED (the workers talk
// to rank 0 only). A gRPC server needs at least one service.
class FollowerService final : public rlhf::v1::Learner::Service {};

absl::Status RunFollower(const rlhf::v1::LearnerConfig& config,
                         const rlhf::grpc_util::ServiceArgs& args,
                         rlhf::dist::ProcessGroup* group) {
  auto registry = std::make_shared<prometheus::Registry>();
  RLHF_ASSIGN_OR_RETURN(auto follower, rlhf::learner::LearnerFollower::Create(config, group));
  absl::Status status;
  std::thread thread;
  // No Learner RPCs here (nothing routes to ranks > 0), but the health of "rlhf.v1.Learner"
  // says this rank is up, so that one pod template probes every rank alike.
  FollowerService service;
  RLHF_RETURN_IF_ERROR(rlhf::grpc_util::ServeUntilSignal(
      config.server(), registry, {&service}, {"rlhf.v1.Learner"}, args.port_file, [&] {
        thread = std::thread([&] {
          status = follower->Run();
          if (!status.ok()) LOG(ERROR) << "learner rank " << group->rank() << ": " << status;
          rlhf::process::RequestTermination();
        });
      }));
  if (thread.joinable()) thread.join();
  return status;
}

absl::Status Run(const rlhf::grpc_util::ServiceArgs& args) {
  rlhf::v1::LearnerConfig config;
  RLHF_RETURN_IF_ERROR(rlhf::config::LoadConfig(args.config_path, args.overrides, &config));
  RLHF_RETURN_IF_ERROR(rlhf::learner::ValidateLearnerConfig(config));
  RLHF_ASSIGN_OR_RETURN(rlhf::dist::DistOptions dist, rlhf::dist::DistOptionsFromEnv());
  dist.timeout = absl::Seconds(config.dist_timeout_seconds());
  LOG(INFO) << "effective config: " << rlhf::config::ConfigToJson(config);
  RLHF_RETURN_IF_ERROR(rlhf::runtime::InitTorchRuntime(config.threads()));
  // Models load here; the torch work runs on other threads (see the function).
  rlhf::runtime::MakeThisThreadSerial();
  std::unique_ptr<rlhf::dist::ProcessGroup> group;
  if (dist.world_size > 1) {
    LOG(INFO) << "learner rank " << dist.rank << " of " << dist.world_size << ": joining "
              << dist.master_addr << ":" << dist.master_port;
    RLHF_ASSIGN_OR_RETURN(group, rlhf::dist::ProcessGroup::Create(dist));
    LOG(INFO) << "learner rank " << dist.rank << ": joined (" << group->backend() << ")";
    if (!group->is_main()) return RunFollower(config, args, group.get());
  }
  auto registry = std::make_shared<prometheus::Registry>();
  RLHF_ASSIGN_OR_RETURN(auto learner,
                        rlhf::learner::Learner::Create(config, *registry, group.get()));
  RLHF_RETURN_IF_ERROR(rlhf::grpc_util::ServeUntilSignal(
      config.server(), registry, {learner->service()}, {"rlhf.v1.Learner"}, args.port_file,
      [&learner] {
        learner->Start([](const nlohmann::json& event) { std::cout << event.dump() << std::endl; },
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
