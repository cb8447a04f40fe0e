// Supervised fine-tuning (`rlhf sft`): the causal-LM loss on the trained pieces of each
// demonstration only (responses / Assistant turns; prompts and Human turns are context), in
// length-bucketed batches (shuffled, then sorted by length within windows of `bucket_batches`
// batches, so that padding stays small while the order stays random), with the shared AdamW /
// warm-up + cosine recipe, gradient accumulation and clipping. Deterministic per (seed, step):
// a resumed run ends at the parameters of an uninterrupted one.
#ifndef RLHF_COMMON_TRAIN_SFT_TRAINER_H_
#define RLHF_COMMON_TRAIN_SFT_TRAINER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/data/preference_data.h"
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
  int64_t batch_sequences = 16;       // sequences per optimizer step
  int64_t micro_batch_sequences = 8;  // per forward/backward (gradient accumulation)
  int64_t bucket_batches = 8;         // length-sorting window, in batches (1 = no bucketing)
  uint64_t seed = 1;
};
absl::Status Validate(const SftTrainerOptions& options);

struct SftStepStats {
  double loss = 0;  // mean over the batch's trained tokens
  int64_t tokens = 0;
  double learning_rate = 0;
  double grad_norm = 0;
};

class SftTrainer {
 public:
  // `model` needs an LM head; `examples` must not be empty and fit its context.
  static absl::StatusOr<std::unique_ptr<SftTrainer>> Create(
      model::Llama model, std::vector<TokenizedExample> examples, const SftTrainerOptions& options);
  ~SftTrainer();

  absl::StatusOr<SftStepStats> Step();
  // Mean loss over the trained tokens of `examples`, without gradients.
  absl::StatusOr<double> EvalLoss(const std::vector<TokenizedExample>& examples,
                                  int64_t batch = 16);
  int64_t step() const { return step_; }
  int64_t steps_per_epoch() const;
  absl::Status Save(const std::string& dir) const;
  absl::Status Restore(const std::string& dir);
  model::Llama& model();

 private:
  SftTrainer(model::Llama model, std::vector<TokenizedExample> examples,
             const SftTrainerOptions& options);
  // The example indices of optimizer step `step`.
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
