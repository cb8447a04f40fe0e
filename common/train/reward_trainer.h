// Reward-model training (`rlhf train-rm`): a scalar-head Llama fitted to preference pairs with the
// Bradley-Terry loss (soft labels allowed: common/rl/preference.h), AdamW, linear warm-up then
// cosine decay, gradient accumulation and grad-norm clipping. The data order is a deterministic
// function of (seed, epoch), so a run resumed from a checkpoint ends at the same parameters as
// an uninterrupted one.
//
// Data parallelism: with options.process_group of N > 1 ranks, every rank is given the same
// model, pairs and options and calls every method (they are collectives), except Save, which
// rank 0 alone calls (is_main()). batch_pairs is the global batch; rank r trains the r-th
// contiguous share of it (batch_pairs / N pairs of the same (seed, epoch) order) and the
// gradients are averaged, so each step equals the single-process step on the whole batch (up to
// float rounding; when micro_batch_pairs is the per-rank share, the micro-batches are the same
// and N = 2 ends at bit-identical parameters).
//
// Thread-compatible: one thread at a time.
#ifndef RLHF_COMMON_TRAIN_REWARD_TRAINER_H_
#define RLHF_COMMON_TRAIN_REWARD_TRAINER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/dist/gradient_sync.h"
#include "common/dist/process_group.h"
#include "common/model/llama.h"
#include "common/train/optim.h"

namespace rlhf::train {

// One preference pair as token ids of whole scored sequences (train::ScoreTokens).
struct TokenizedPair {
  std::vector<int64_t> chosen;
  std::vector<int64_t> rejected;
  float p_chosen = 1.0f;  // soft label: P(chosen is better)
};

struct RewardTrainerOptions {
  OptimOptions optim;
  int64_t batch_pairs = 16;       // pairs per optimizer step (over all ranks)
  int64_t micro_batch_pairs = 8;  // pairs per forward/backward (gradient accumulation), per rank
  uint64_t seed = 1;              // data order

  // --- Data parallelism
  /// The group this trainer is one rank of (not owned; outlives the trainer). nullptr or a group
  /// of one = single process. REQUIRES with N ranks: N divides batch_pairs and
  /// micro_batch_pairs divides batch_pairs / N.
  dist::ProcessGroup* process_group = nullptr;
  /// Size of the gradient all-reduce buckets.
  int64_t grad_bucket_bytes = dist::kDefaultBucketBytes;
};
absl::Status Validate(const RewardTrainerOptions& options);

struct RewardStepStats {
  double loss = 0;      // mean over the global batch (all ranks)
  double accuracy = 0;  // of the global batch, before the update
  double learning_rate = 0;
  double grad_norm = 0;
};

class RewardTrainer {
 public:
  // `model` must have a scalar head; `pairs` must not be empty and fit its context. With a
  // group: fails on every rank if any rank's inputs are bad or differ from rank 0's, and starts
  // every rank from rank 0's parameters.
  static absl::StatusOr<std::unique_ptr<RewardTrainer>> Create(model::Llama model,
                                                               std::vector<TokenizedPair> pairs,
                                                               const RewardTrainerOptions& options);
  ~RewardTrainer();

  // One optimizer step on the next batch_pairs pairs of the (seed, epoch) order.
  absl::StatusOr<RewardStepStats> Step();
  int64_t step() const { return step_; }
  // Pairs consumed so far / pairs per epoch.
  double epoch() const;

  // Model (HF directory "model"), optimizer state and step into `dir` (created). Restore reads
  // them back into this trainer (same model shape and options).
  // REQUIRES for Save: is_main() (else FAILED_PRECONDITION: one writer per checkpoint; the ranks
  // hold identical state). Restore is called by every rank, on a directory every rank can read
  // (a shared filesystem); it fails on all ranks if any rank fails or the steps differ.
  absl::Status Save(const std::string& dir) const;
  absl::Status Restore(const std::string& dir);
  // Whether this is rank 0 (or a single process): the rank that writes files and logs.
  bool is_main() const;

  model::Llama& model();
  // The pairs trained on, in file order.
  const std::vector<TokenizedPair>& pairs() const { return pairs_; }

 private:
  RewardTrainer(model::Llama model, std::vector<TokenizedPair> pairs,
                const RewardTrainerOptions& options);
  absl::Status RestoreLocal(const std::string& dir);
  // The pair used at position k of the run (epoch k / n, shuffled per epoch).
  const TokenizedPair& PairAt(int64_t k);

  struct State;
  std::unique_ptr<State> state_;
  std::vector<TokenizedPair> pairs_;
  RewardTrainerOptions options_;
  int64_t step_ = 0;
  int64_t order_epoch_ = -1;
  std::vector<int64_t> order_;
};

// Scalar scores of whole sequences (the value at each sequence's last token), `batch` at a time,
// as the reward service computes them. Errors as model::ScoreValues.
absl::StatusOr<std::vector<float>> ScoreSequences(model::Llama& model,
                                                  const std::vector<std::vector<int64_t>>& seqs,
                                                  int64_t batch = 16);

}  // namespace rlhf::train

#endif  // RLHF_COMMON_TRAIN_REWARD_TRAINER_H_
