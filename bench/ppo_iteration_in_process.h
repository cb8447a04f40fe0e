// The work of one iteration of the multi-process PPO loop (rollout worker, reference service,
// reward service, learner), done sequentially in one process with the services' own code and no
// gRPC, for bench/ppo_iteration_bench.cc. Per iteration:
//  1. `leases_per_step` leases of `batch_prompts` prompts, each as the rollout worker runs it
//     (services/rollout/worker.h): GenerationEngine::Generate with the lease's sampling options
//     (prompt i with seed + i), the Trajectory shaping of services/rollout/trajectories.h,
//     reference log-probs with model::ScoreTokenLogProbs on a frozen copy of the model (as
//     ReferenceService::RunBatch slices them), rewards from the reward service's rule scorer on
//     the decoded texts.
//  2. PpoTrainer::Step on the batch, with the learner's options.
//  3. The worker's weight swap: PolicyParameters() -> PolicyHolder::Install (a new engine).
// Leases are granted as LearnerService::LeasePrompts grants them (the same seeds), with the
// prompts in file order.
//
// Thread-compatible.
#ifndef RLHF_BENCH_PPO_ITERATION_IN_PROCESS_H_
#define RLHF_BENCH_PPO_ITERATION_IN_PROCESS_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/learner/ppo_trainer.h"

namespace rlhf::bench {

class InProcessLoop {
 public:
  // Loads what the services would from their config files: the learner's (policy, critic from
  // the policy, tokenizer, prompts, PPO and sampling options) and the reward service's (rules).
  // Errors: those of config::LoadConfig, the loaders and the factories.
  static absl::StatusOr<std::unique_ptr<InProcessLoop>> Create(
      const std::string& learner_config_path, const std::string& reward_config_path,
      int batch_prompts, int leases_per_step);
  virtual ~InProcessLoop() = default;

  // Runs one iteration (steps 1-3 above); returns the PPO step's statistics.
  virtual absl::StatusOr<learner::PpoStepStats> Iteration() = 0;

  // Seconds spent so far in each stage: "generate", "reference", "reward", "learner_step",
  // "weight_swap".
  virtual std::map<std::string, double>& stage_seconds() = 0;

 protected:
  InProcessLoop() = default;
};

}  // namespace rlhf::bench

#endif  // RLHF_BENCH_PPO_ITERATION_IN_PROCESS_H_
