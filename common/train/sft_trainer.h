// Supervised fine-tuning (`rlhf sft`): the causal-LM loss on the trained pieces of each
// demonstration only (responses / Assistant turns; prompts and Human turns are context), in
// length-bucketed batches (shuffled, then sorted by length within windows of `bucket_batches`
// batches, so that padding stays small while the order stays random), with the shared AdamW /
// warm-up + cosine recipe, gradient accumulation and clipping. Deterministic per (seed, step):
// a resumed run ends at the parameters of an uninterrupted one.
//
// Data parallelism: with options.process_group of N > 1 ranks, every rank is given the same
// model, examples and options and calls every method (they are collectives), except Save, which
// rank 0 alone calls (is_main()). batch_sequences is the global batch: every rank computes the
// same batch plan, takes the r-th contiguous share of each batch (sizes differing by at most
// one; a rank may get none of a short last batch) and scales its summed token loss by
// N / (trained tokens of the WHOLE batch). Every rank counts that from the plan (it holds all the
// examples), so no extra communication is needed, and after the gradient mean over the ranks the
// step equals the single-process step on the whole batch, for any split of the tokens. (The
// micro-batches, hence the padding and the order of float additions, differ unless
// micro_batch_sequences equals the per-rank share.)
//
// Thread-compatible: one thread at a time.
#ifndef RLHF_COMMON_TRAIN_SFT_TRAINER_H_
#define RLHF_COMMON_TRAIN_SFT_TRAINER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/data/preference_data.h"
#include "common/dist/gradient_sync.h"
#include "common/dist/process_group.h"
#include "common/model/llama.h"
#include "common/tokenizer/tokenizer.h"
#include "common/train/optim.h"

namespace rlhf::train {

struct TokenizedExample {
  std::vector<int64_t> tokens;
  std::vector<uint8_t> train;  // per token: 1 = a target of the loss (predicted from the prefix)
};

// BOS, then each segment's tokens (trained ones marked), then EOS (trained) after the last
// trained segment. A demonstration longer than `max_seq_len` is a bad record under `options`
// (skipped and added to `report`, or an error; see data::ReadOptions).
absl::StatusOr<std::vector<TokenizedExample>> TokenizeDemonstrations(
    const std::vector<data::Demonstration>& demos, const tokenizer::Tokenizer& tok,
    int64_t max_seq_len, const std::string& path, const data::ReadOptions& options,
    data::ReadReport* report);

struct SftTrainerOptions {
  OptimOptions optim;
  int64_t batch_sequences = 16;       // sequences per optimizer step (over all ranks)
  int64_t micro_batch_sequences = 8;  // per forward/backward (gradient accumulation), per rank
  int64_t bucket_batches = 8;         // length-sorting window, in batches (1 = no bucketing)
  uint64_t seed = 1;

  // --- Data parallelism
  /// The group this trainer is one rank of (not owned; outlives the trainer). nullptr or a group
  /// of one = single process.
  dist::ProcessGroup* process_group = nullptr;
  /// Size of the gradient all-reduce buckets.
  int64_t grad_bucket_bytes = dist::kDefaultBucketBytes;
};
absl::Status Validate(const SftTrainerOptions& options);

struct SftStepStats {
  double loss = 0;     // mean over the (global) batch's trained tokens
  int64_t tokens = 0;  // trained tokens of the global batch
  double learning_rate = 0;
  double grad_norm = 0;
};

class SftTrainer {
 public:
  // `model` needs an LM head; `examples` must not be empty and fit its context. With a group:
  // fails on every rank if any rank's inputs are bad or differ from rank 0's, and starts every
  // rank from rank 0's parameters.
  static absl::StatusOr<std::unique_ptr<SftTrainer>> Create(
      model::Llama model, std::vector<TokenizedExample> examples, const SftTrainerOptions& options);
  ~SftTrainer();

  absl::StatusOr<SftStepStats> Step();
  // Mean loss over the trained tokens of `examples`, without gradients. With a group, each rank
  // evaluates its share of `examples` (the same list on every rank) and all get the total.
  absl::StatusOr<double> EvalLoss(const std::vector<TokenizedExample>& examples,
                                  int64_t batch = 16);
  int64_t step() const { return step_; }
  int64_t steps_per_epoch() const;
  // As RewardTrainer: Save REQUIRES is_main(); every rank Restores from a directory it can read.
  absl::Status Save(const std::string& dir) const;
  absl::Status Restore(const std::string& dir);
  // Whether this is rank 0 (or a single process): the rank that writes files and logs.
  bool is_main() const;
  model::Llama& model();

 private:
  SftTrainer(model::Llama model, std::vector<TokenizedExample> examples,
             const SftTrainerOptions& options);
  absl::Status RestoreLocal(const std::string& dir);
  // The example indices of optimizer step `step` (the global batch).
  std::vector<int64_t> Batch(int64_t step);

  struct State;
  std::unique_ptr<State> state_;
  std::vector<TokenizedExample> examples_;
  SftTrainerOptions options_;
  int64_t step_ = 0;
  int64_t plan_epoch_ = -1;
  std::vector<std::vector<int64_t>> plan_;  // batches of the current epoch
};

}  // namespace rlhf::train

#endif  // RLHF_COMMON_TRAIN_SFT_TRAINER_H_
