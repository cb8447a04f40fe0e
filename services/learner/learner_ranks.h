// The ranks of a multi-rank learner (data-parallel PPO over dist::ProcessGroup).
//
// Rank 0 is the Learner: it serves the workers, gathers each batch and decides what every rank
// does next, telling the others by broadcast (LearnerRankMessage):
//   RESTORE <dir>  once, after the trainers are created: restore from <dir> ("" = fresh run)
//   STEP <batch>   one PPO step on the whole batch (each rank trains on its share)
//   WAIT           rank 0 is still gathering the batch (sent every few seconds, so that the
//                  others' broadcast does not time out while workers generate)
//   STOP           the run is over (total_steps, or rank 0 was stopped): exit 0
// Every other rank is a LearnerFollower: a replica of the trainer that follows those messages.
// Both sides make the same collectives in the same order: PpoTrainer::Create, the RESTORE
// broadcast (+ Restore), then per step the message broadcast and Step.
//
// Failure: a rank that dies or hangs makes the others' next collective fail after the group's
// timeout (dist::ProcessGroup); rank 0's loop then fails and the process exits non-zero, as do
// the followers. The whole learner restarts and resumes from rank 0's latest checkpoint.
#ifndef RLHF_SERVICES_LEARNER_LEARNER_RANKS_H_
#define RLHF_SERVICES_LEARNER_LEARNER_RANKS_H_

#include <functional>
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/dist/process_group.h"
#include "rlhf/v1/config.pb.h"
#include "rlhf/v1/trajectory.pb.h"
#include "services/learner/ppo_trainer.h"

namespace rlhf::learner {

// Rank 0: sends `message` to every other rank (one broadcast; the others must be receiving).
absl::Status SendToRanks(dist::ProcessGroup& group, const rlhf::v1::LearnerRankMessage& message);
// Ranks > 0: the next message from rank 0. Errors: the group's, or Internal for bytes that do
// not parse.
absl::StatusOr<rlhf::v1::LearnerRankMessage> ReceiveFromRank0(dist::ProcessGroup& group);

// The trainer options of a learner config: the PPO section, with the decoupled correction only
// where trajectories can be stale (max_policy_lag > 0; with lag 0 PPO is exactly synchronous),
// on `group` (nullptr = one process). Every rank builds its trainer from these.
PpoTrainerOptions LearnerTrainerOptions(const rlhf::v1::LearnerConfig& config,
                                        dist::ProcessGroup* group);

// The policy named in `config` and its critic (config.critic, or the policy's trunk with a zero
// value head; null for RLOO and GRPO, which train no critic): what every rank's trainer starts
// from.
absl::StatusOr<std::pair<model::Llama, model::Llama>> LoadLearnerModels(
    const rlhf::v1::LearnerConfig& config);

// A learner rank > 0. Thread-compatible: Run on one thread.
class LearnerFollower {
 public:
  // Loads the policy (and critic) named in `config` and creates the trainer on `group` (a
  // collective with rank 0's Learner::Create). REQUIRES: group is not rank 0.
  static absl::StatusOr<std::unique_ptr<LearnerFollower>> Create(
      const rlhf::v1::LearnerConfig& config, dist::ProcessGroup* group);
  // With the trainer given (tests); it must have been created on a group, as rank > 0.
  static absl::StatusOr<std::unique_ptr<LearnerFollower>> Create(
      std::unique_ptr<PpoTrainer> trainer);

  // Follows rank 0: RESTORE, then STEPs until STOP (returns OK). Errors: the group's, a step's,
  // or a message out of protocol. `on_step` (when set) gets each step's statistics.
  absl::Status Run(const std::function<void(const PpoStepStats&)>& on_step = {});

  PpoTrainer& trainer() { return *trainer_; }

 private:
  explicit LearnerFollower(std::unique_ptr<PpoTrainer> trainer) : trainer_(std::move(trainer)) {}

  const std::unique_ptr<PpoTrainer> trainer_;
};

}  // namespace rlhf::learner

#endif  // RLHF_SERVICES_LEARNER_LEARNER_RANKS_H_
