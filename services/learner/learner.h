// The learner process minus its server: builds the prompt pool, the trajectory queue, the
// weight store and the PPO trainer from a LearnerConfig, resumes from the latest checkpoint,
// and runs the training loop on its own thread:
//
//  1. Publish the current policy as version = steps done (0 for a fresh run).
//  2. Take batch_size fresh trajectories from the queue (waiting as long as it takes). With
//     ppo.group_size k > 1 (RLOO, GRPO) the pool leases k copies of each prompt and the queue
//     hands out whole groups (prompt_pool.h, trajectory_queue.h); the loop passes on the groups
//     the pool voided (their lease ended first), whose held trajectories the queue drops.
//  3. One PPO step; publish the new version; report the step (callback + metrics).
//  4. Every checkpoint_every steps, and at the end, write a checkpoint:
//       <checkpoint_dir>/step-<8 digits>/{policy/, critic/, optimizer.pt, trainer.json,
//                                         learner.json}
//     written under a temporary name and renamed, then <checkpoint_dir>/latest (its name)
//     replaced atomically. learner.json holds the prompt-pool cursor and the ledger.
//     Every verdict on a trajectory, and every batch trained on, is also appended to
//     <checkpoint_dir>/trajectories.journal (see JournalPath in trajectory_journal.h): on start the
//     learner queues again every accepted trajectory that no step up to its checkpoint consumed, so
//     a learner that dies loses the steps since its last checkpoint and no trajectory.
//  5. After total_steps: close the pool (workers get empty leases), checkpoint, report "done",
//     close the queue (push streams end with UNAVAILABLE).
//
// Thread-safe: Start/Stop/Wait from any thread; the loop owns the trainer.
#ifndef RLHF_SERVICES_LEARNER_LEARNER_H_
#define RLHF_SERVICES_LEARNER_LEARNER_H_

#include <prometheus/registry.h>

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/dist/process_group.h"
#include "rlhf/v1/config.pb.h"
#include "rlhf/v1/trajectory.pb.h"
#include "services/learner/learner_metrics.h"
#include "services/learner/learner_service.h"
#include "services/learner/ppo_trainer.h"
#include "services/learner/prompt_pool.h"
#include "services/learner/trajectory_journal.h"
#include "services/learner/trajectory_queue.h"
#include "services/learner/weight_store.h"

namespace rlhf::learner {

// Checks the fields Learner::Create needs (paths set, sizes positive, batch_size a multiple of
// minibatch_size, ...). InvalidArgument naming the field.
absl::Status ValidateLearnerConfig(const rlhf::v1::LearnerConfig& config);

class Learner {
 public:
  // One JSON object per event: {"event": "step", "step": ..., PPO statistics, ledger} after
  // each step and {"event": "done", ...} at the end. Called on the loop thread.
  using EventCallback = std::function<void(const nlohmann::json&)>;

  // Loads the policy (and critic, or CriticFromPolicy), the tokenizer and the prompts named in
  // `config`, then resumes from <checkpoint_dir>/latest when it exists.
  // With a `group` of several ranks this is rank 0, and every other rank runs a
  // LearnerFollower (learner_ranks.h) at the same time: the trainers are created together and
  // every step is broadcast to them.
  static absl::StatusOr<std::unique_ptr<Learner>> Create(const rlhf::v1::LearnerConfig& config,
                                                         prometheus::Registry& registry,
                                                         dist::ProcessGroup* group = nullptr);
  // Same with the trainer and the tokenized prompts given (tests, benches); config's model,
  // critic, tokenizer and prompts fields are ignored. The trainer's group (if any) is the
  // learner's.
  static absl::StatusOr<std::unique_ptr<Learner>> Create(const rlhf::v1::LearnerConfig& config,
                                                         std::unique_ptr<PpoTrainer> trainer,
                                                         std::vector<rlhf::v1::Prompt> prompts,
                                                         prometheus::Registry& registry);
  ~Learner();  // Stops and joins.
  Learner(const Learner&) = delete;
  Learner& operator=(const Learner&) = delete;

  // The gRPC service to register with the server.
  LearnerService* service() { return service_.get(); }

  // Publishes the current version and starts the loop; `on_exit` (when set) runs on the loop
  // thread after the loop ends, however it ends (or at once, when publishing fails: Wait() then
  // returns that error). REQUIRES: called once.
  void Start(EventCallback on_event, std::function<void()> on_exit = {});
  // Asks the loop to stop after the step in progress (a partial batch is discarded and
  // reported), writes a checkpoint when configured, and joins. Idempotent.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);
  // Blocks until the loop has ended; returns its status (OK after total_steps or Stop).
  absl::Status Wait() ABSL_LOCKS_EXCLUDED(mu_);
  // Whether the loop ran all total_steps.
  bool finished() const ABSL_LOCKS_EXCLUDED(mu_);

  // For tests: the trainer (only while the loop is not running).
  PpoTrainer& trainer() { return *trainer_; }
  TrajectoryLedger ledger() const { return queue_->Ledger(); }
  PromptPoolStats prompt_stats() const { return pool_->Stats(); }

 private:
  Learner(const rlhf::v1::LearnerConfig& config, std::unique_ptr<PpoTrainer> trainer,
          std::unique_ptr<PromptPool> pool, std::unique_ptr<TrajectoryJournal> journal,
          std::unique_ptr<TrajectoryQueue> queue, prometheus::Registry& registry);
  absl::Status Resume();
  // Queues again what the journal says was accepted and not consumed up to the restored step.
  absl::Status RestoreQueue();
  // Whether there are other learner ranks to tell what to do.
  bool sharded() const { return group_ != nullptr; }
  // Broadcasts a LearnerRankMessage of `kind` (with `batch`) to the other ranks; no-op alone.
  absl::Status TellRanks(rlhf::v1::LearnerRankMessage::Kind kind,
                         const std::vector<rlhf::v1::Trajectory>* batch = nullptr);
  // Publishes the trainer's policy as version = steps done.
  absl::Status PublishPolicy();
  absl::Status Loop(const EventCallback& on_event);
  // With groups: expires overdue leases and drops from the queue the groups the pool voided.
  void DropVoidedGroups();
  absl::Status WriteCheckpoint();
  void RemoveOldCheckpoints();
  nlohmann::json LedgerJson() const;

  // Constant after construction.
  const rlhf::v1::LearnerConfig config_;
  const std::unique_ptr<PpoTrainer> trainer_;
  const std::unique_ptr<PromptPool> pool_;
  const std::unique_ptr<TrajectoryJournal> journal_;  // null without checkpoint_dir
  const std::unique_ptr<TrajectoryQueue> queue_;
  dist::ProcessGroup* const group_;      // null unless there are other learner ranks
  const absl::Duration rank_keepalive_;  // WAIT at least this often while gathering a batch
  const std::unique_ptr<WeightStore> weights_;
  const std::unique_ptr<LearnerMetrics> metrics_;
  const std::unique_ptr<LearnerService> service_;

  absl::Time last_told_ranks_;  // loop thread only
  // The journal's size after its last compaction (loop thread only).
  int64_t journal_compacted_bytes_ = 0;
  std::thread thread_;
  mutable absl::Mutex mu_;
  bool stop_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rlhf::learner

#endif  // RLHF_SERVICES_LEARNER_LEARNER_H_
