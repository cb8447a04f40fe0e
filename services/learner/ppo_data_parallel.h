// Internal to PpoTrainer: the pieces of its data-parallel path that need no models. Fingerprints
// the ranks compare, this rank's share of a minibatch (the weight of its loss terms), the step's
// statistics as sums over the ranks, and the timed collectives of one step.
//
// Thread-compatible.
#ifndef RLHF_SERVICES_LEARNER_PPO_DATA_PARALLEL_H_
#define RLHF_SERVICES_LEARNER_PPO_DATA_PARALLEL_H_

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/dist/gradient_sync.h"
#include "common/dist/process_group.h"
#include "common/rl/losses.h"
#include "services/learner/ppo_trainer.h"

namespace rlhf::learner::internal {

// Of the options and models: what must be the same on every rank for data-parallel PPO (the
// options that shape the math, not the group itself; the architectures and parameter shapes).
int64_t TrainerFingerprint(const PpoTrainerOptions& options, const model::Llama& policy,
                           const model::Llama& critic);

// Of one Step's inputs (tokens, log-probs, rewards, finish reasons, versions of `batch`) and of
// the trainer state `state` (see PpoTrainer::StateFingerprint).
int64_t BatchFingerprint(const std::vector<rlhf::v1::Trajectory>& batch, int64_t state);

// Of the trainer state that must be equal on every rank: the step, the KL coefficient and the
// shuffle RNG (read from a copy, so `rng` is not advanced).
int64_t StateFingerprint(int64_t step, double kl_coef, const std::mt19937_64& rng);

// This rank's fraction of a minibatch: the weight of its loss terms in the minibatch's mean. 1
// and 1 for a single process.
struct MinibatchShare {
  double tokens = 1;  // this rank's response tokens / the minibatch's
  double rows = 1;    // this rank's trajectories / the minibatch's
  // The fraction a loss reduced by `aggregation` counts: tokens for a token mean, rows for a mean
  // of sequence means.
  double Of(rl::LossAggregation aggregation) const {
    return aggregation == rl::LossAggregation::kTokenMean ? tokens : rows;
  }
};

// Statistics summed over a step's minibatches, each weighted by this rank's share; reduced over
// the ranks (StepComm::AllReduceSum), they are the single-process sums.
struct LossSums {
  double policy_loss = 0;
  double value_loss = 0;
  double clipfrac = 0;
  double value_clipfrac = 0;
  double approx_kl = 0;
  double entropy = 0;
  double behaviour_weight = 0;  // sum over response tokens (decoupled loss only)
  double behaviour_tokens = 0;  // the tokens of that sum
};

// Runs `fn`, returning Internal with the message of a LibTorch (or other std::exception) error.
absl::Status Guarded(const std::function<void()>& fn);

// The collectives of one step on a trainer's group, with the time spent in them. Without a group,
// or with a group of one, each call returns at once (Agree returns its argument) and seconds()
// stays 0. Calls on a group must be made in the same order on every rank.
class StepComm {
 public:
  explicit StepComm(dist::ProcessGroup* group);

  StepComm(const StepComm&) = delete;
  StepComm& operator=(const StepComm&) = delete;

  // Whether there are other ranks (the work of the step is split).
  bool sharded() const { return group_ != nullptr; }
  // `local` if it is an error; else FailedPrecondition if another rank's was; else OK.
  absl::Status Agree(const absl::Status& local);
  // FailedPrecondition naming `what` on every rank unless `value` is the same on all ranks.
  absl::Status CheckSame(int64_t value, absl::string_view what);
  // Element-wise sums over the ranks, in place.
  absl::Status AllReduceSum(absl::Span<const torch::Tensor> tensors);
  absl::Status AllReduceSum(LossSums* sums);
  // The gradient mean over the ranks.
  absl::Status Sync(dist::GradientSync& sync);
  // Wall time spent in the calls above.
  double seconds() const { return seconds_; }

 private:
  absl::Status Timed(const std::function<absl::Status()>& collective);

  dist::ProcessGroup* const group_;  // null unless there are other ranks
  double seconds_ = 0;
};

}  // namespace rlhf::learner::internal

#endif  // RLHF_SERVICES_LEARNER_PPO_DATA_PARALLEL_H_
