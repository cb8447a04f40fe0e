// The learner's PPO step on a batch of trajectories: policy + critic + their Adam optimizers,
// the adaptive KL coefficient, and the checkpoint of all of it. The math is common/rl's
// (ComputePpoTargets / ComputePpoLoss); this class only batches trajectories into tensors,
// runs the models and the optimizers, and keeps the state. The learner service calls it, and so
// does the in-process equivalence test and bench/ppo_step_bench: one implementation.
//
// One step, for B trajectories (prompt p_i, response r_i, reward s_i, reference log-probs):
//  1. Under no_grad, the policy's log-probs of the response tokens (at the sampling temperature)
//     and the critic's values at the positions that predict them ("old" log-probs and values).
//  2. ComputePpoTargets: missing-EOS penalty, per-token KL penalty (kl_coef) with the score at
//     the last response token, GAE, whitened advantages.
//  3. `epochs` passes over the batch in shuffled minibatches: ComputePpoLoss (clipped policy
//     loss + vf_coef * clipped value loss) - entropy_coef * entropy, backward, gradient-norm clip
//     of policy and critic separately, one Adam step each.
//  4. The KL controller moves towards its target with the batch's mean sequence KL.
//
// Critic-free (options.group_advantage set: RLOO or GRPO): the batch is whole groups of
// group_size consecutive trajectories of one prompt (Step rejects any other batch), there is no
// critic (Create takes a null one; no values, no value loss, no critic optimizer or checkpoint),
// and step 2 is rl::ComputeGroupPpoTargets: each trajectory's sequence reward (score with the
// missing-EOS penalty, minus kl_coef times its summed KL to the reference, the KL being that of
// the policy at the start of the step, as for GAE) against its group's baseline, on every one of
// its response tokens, not whitened. Steps 1, 3 (the clipped or decoupled policy loss and the
// entropy bonus) and 4 are as above; the targets are computed on the whole batch on every rank
// before any split, so the groups' math does not depend on the ranks.
//
// Data parallelism: with options.process_group of N > 1 ranks, every rank is given the same
// models (Create copies rank 0's parameters) and options, and calls every method (they are
// collectives), except Save, which rank 0 alone calls (is_main()). Every rank Steps on the SAME
// whole batch (the learner broadcasts it; Step fails on all ranks when the batches, or the
// trainers' states, differ). Step 1 is split: each rank runs its contiguous share of the
// trajectories and the shares are gathered (an all-reduce over disjoint rows), so every rank
// computes the same targets (2, 4) on the whole batch. In 3 the shuffle is the same on every rank
// and each minibatch is split into contiguous shares; a rank scales each loss term by N * (its
// share of the minibatch's tokens, or of its trajectories for a sequence-mean aggregation), so
// that after the gradient mean over the ranks (dist::GradientSync, policy and critic together,
// before clipping) the update is the single-process one on the whole minibatch, up to float
// rounding. The statistics are the whole batch's, the same on every rank. A LibTorch error on one
// rank fails the step on all of them (at the next collective) instead of leaving them waiting.
//
// Thread-compatible: one thread at a time.
#ifndef RLHF_SERVICES_LEARNER_PPO_TRAINER_H_
#define RLHF_SERVICES_LEARNER_PPO_TRAINER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/dist/gradient_sync.h"
#include "common/dist/process_group.h"
#include "common/model/llama.h"
#include "common/rl/kl_controller.h"
#include "common/rl/ppo_step.h"
#include "rlhf/v1/config.pb.h"
#include "rlhf/v1/trajectory.pb.h"

namespace rlhf::learner {
namespace internal {
class StepComm;
}  // namespace internal

struct PpoTrainerOptions {
  /// The loss and target math (clip ranges, GAE, vf_coef, EOS penalty).
  rl::PpoStepOptions step;
  /// Whiten the advantages over the batch (step.whiten) or use them raw.
  bool whiten_advantages = true;
  /// The KL-penalty coefficient: fixed or adaptive.
  rl::KlControllerOptions kl;
  /// Trajectories per optimizer step, and passes over the batch.
  int minibatch_size = 8;
  int epochs = 2;
  /// Adam learning rates.
  double learning_rate = 1e-4;
  double critic_learning_rate = 1e-4;
  /// Gradient-norm clip, applied to policy and critic separately; 0 = off.
  double max_grad_norm = 1.0;
  /// Weight of the entropy bonus.
  double entropy_coef = 0.0;
  /// Temperature the responses were sampled at (log-probs are taken at the same one).
  double temperature = 1.0;
  /// Seed of the minibatch shuffles.
  uint64_t seed = 1;
  /// Decoupled PPO for trajectories from older policy versions (rl::DecoupledPpoLoss): the ratio
  /// is to the policy at the start of the step, each token weighted by exp(proximal -
  /// behaviour log-prob) and dropped above `behaviour_weight_cap` (nullopt = no cap). A
  /// trajectory of the current version counts as its own behaviour (weight exactly 1). Off =
  /// the standard clipped loss on every trajectory.
  bool decoupled = false;
  std::optional<double> behaviour_weight_cap = 5.0;
  /// Critic-free advantages: the group baseline (kLeaveOneOut = RLOO, kMeanStd = GRPO) of each
  /// trajectory's sequence reward, see the file comment. Then whiten_advantages, vf_coef,
  /// step.gae, step.value and critic_learning_rate are unused. nullopt = GAE with a critic.
  std::optional<rl::GroupAdvantageOptions> group_advantage;
  /// Trajectories per group with group_advantage (>= 2); 1 otherwise.
  int group_size = 1;

  // --- Data parallelism
  /// The group this trainer is one rank of (not owned; outlives the trainer). nullptr or a group
  /// of one = single process.
  dist::ProcessGroup* process_group = nullptr;
  /// Size of the gradient all-reduce buckets (policy and critic gradients, in that order).
  int64_t grad_bucket_bytes = dist::kDefaultBucketBytes;
};

absl::Status Validate(const PpoTrainerOptions& options);

// Options from the typed config.
PpoTrainerOptions PpoTrainerOptionsFromConfig(const rlhf::v1::PpoConfig& ppo,
                                              const rlhf::v1::SamplingConfig& sampling);

// What one step did; means are over response tokens unless said otherwise.
struct PpoStepStats {
  int64_t step = 0;          // steps done after this one
  int64_t trajectories = 0;  // batch size
  int64_t tokens = 0;        // response tokens in the batch
  double score_mean = 0;     // mean reward-model score per trajectory
  double kl_mean = 0;        // mean per-sequence KL to the reference (nats)
  double kl_coef = 0;        // coefficient used in this step
  double policy_loss = 0;    // means over minibatches and epochs
  double value_loss = 0;
  double clipfrac = 0;
  double value_clipfrac = 0;
  double approx_kl = 0;  // between the old and the updated policy
  double entropy = 0;
  double explained_variance = 0;  // of the returns by the old values
  double response_length_mean = 0;
  double seconds = 0;            // wall time of the step
  double optimizer_seconds = 0;  // of which gradient clipping and optimizer updates
  // Of which collectives between the ranks: the gradient all-reduce, the gather of step 1, the
  // agreement on inputs, errors and statistics, including the wait there for slower ranks. 0 on
  // one rank. What is left, seconds - optimizer_seconds - allreduce_seconds, is this rank's
  // forward/backward (and batching, targets).
  double allreduce_seconds = 0;
  int64_t stale_trajectories = 0;    // from an older policy version than the learner's
  double behaviour_weight_mean = 1;  // mean decoupled weight over response tokens (1 = off)
};

class PpoTrainer {
 public:
  // Takes ownership of `policy` (needs an LM head) and `critic` (needs a scalar head; same
  // vocabulary and context; null, model::Llama{nullptr}, with options.group_advantage, and only
  // then). Errors: InvalidArgument for bad options or models. With a group:
  // fails on every rank if any rank's options or models are bad (FailedPrecondition on the
  // others) or differ from rank 0's options and architectures (FailedPrecondition), and starts
  // every rank from rank 0's policy and critic parameters.
  static absl::StatusOr<std::unique_ptr<PpoTrainer>> Create(model::Llama policy,
                                                            model::Llama critic,
                                                            const PpoTrainerOptions& options);

  // A critic that starts as `policy`'s trunk with a zero value head (so its first values are 0).
  static absl::StatusOr<model::Llama> CriticFromPolicy(const model::Llama& policy);

  PpoTrainer(const PpoTrainer&) = delete;
  PpoTrainer& operator=(const PpoTrainer&) = delete;

  // Runs one PPO step on `batch` (in this order; the result depends on it only through the
  // seeded minibatch shuffle). Errors: InvalidArgument for fewer than 2 response tokens in all,
  // a critic-free batch that is not whole consecutive groups (same prompt_index and prompt
  // tokens), mismatched array sizes, token ids outside the vocabulary or sequences beyond the
  // context; Internal when LibTorch fails. The models are unchanged on an InvalidArgument error.
  // With a group, every rank passes the same `batch`: a rank whose batch (or step, KL coefficient
  // or shuffle state) differs fails with FailedPrecondition on every rank, as do the other ranks
  // when one rank's batch is invalid or its LibTorch fails; errors of the group itself are its
  // own (see dist::ProcessGroup: the group is then broken).
  absl::StatusOr<PpoStepStats> Step(const std::vector<rlhf::v1::Trajectory>& batch);

  // The policy's parameters (named as Llama's named_parameters()), detached copies.
  std::vector<std::pair<std::string, torch::Tensor>> PolicyParameters() const;

  // Writes policy/ and critic/ (HF safetensors, float32; no critic/ when critic-free), optimizer.pt
  // and trainer.json (step, KL coefficient, shuffle RNG) into `dir` (created). Restore reads them
  // back; the models' architectures must match. Errors: Internal / NotFound / InvalidArgument with
  // the path. With a group, Save REQUIRES is_main() (FailedPrecondition otherwise) and every rank
  // Restores from a directory it can read; a restore that fails on one rank, or restores different
  // states, fails on all of them.
  absl::Status Save(const std::string& dir) const;
  absl::Status Restore(const std::string& dir);
  // Whether this is rank 0 (or a single process): the rank that writes files and logs.
  bool is_main() const;

  int64_t step() const { return step_; }
  double kl_coef() const { return kl_.value(); }
  model::Llama& policy() { return policy_; }
  model::Llama& critic() { return critic_; }  // null when critic-free
  const PpoTrainerOptions& options() const { return options_; }

 private:
  PpoTrainer(model::Llama policy, model::Llama critic, const PpoTrainerOptions& options,
             rl::KlController kl);
  absl::StatusOr<PpoStepStats> StepImpl(const std::vector<rlhf::v1::Trajectory>& batch,
                                        internal::StepComm& comm);
  absl::Status RestoreLocal(const std::string& dir);
  // What must be the same on every rank before and after a step: step, KL coefficient, shuffle.
  int64_t StateFingerprint() const;

  const PpoTrainerOptions options_;
  model::Llama policy_;
  model::Llama critic_;
  std::unique_ptr<torch::optim::Adam> policy_optimizer_;
  std::unique_ptr<torch::optim::Adam> critic_optimizer_;
  std::unique_ptr<dist::GradientSync> sync_;  // null unless a group of more than one rank
  rl::KlController kl_;
  std::mt19937_64 rng_;
  int64_t step_ = 0;
};

}  // namespace rlhf::learner

#endif  // RLHF_SERVICES_LEARNER_PPO_TRAINER_H_
