// Teacher-forced scoring of given token sequences, batched: per-token log-probs under an LM head
// (what the reference service serves and PPO recomputes) and scalar-head values per position
// (reward and value models). Sequences of different lengths are right-padded internally; a
// sequence's results do not depend on its batch-mates (up to float round-off).
#ifndef RLHF_COMMON_MODEL_SCORING_H_
#define RLHF_COMMON_MODEL_SCORING_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model/llama.h"

namespace rlhf::model {

// Returns, for each sequence s, len(s) - 1 values: log_softmax(logits[t] / temperature)[s[t+1]]
// for t = 0 .. len(s) - 2 (none for a one-token sequence). Errors: InvalidArgument for no
// sequences, empty sequences,
// ids outside the vocab, sequences longer than max_seq_len, temperature <= 0, no LM head.
absl::StatusOr<std::vector<std::vector<float>>> ScoreTokenLogProbs(
    Llama& model, const std::vector<std::vector<int64_t>>& sequences, double temperature = 1.0);

// Returns, for each sequence, the scalar-head value at every position (len(s) values).
// Errors as above; FailedPrecondition when the model has no scalar head.
absl::StatusOr<std::vector<std::vector<float>>> ScoreValues(
    Llama& model, const std::vector<std::vector<int64_t>>& sequences);

// Builds a right-padded batch: tokens [B, T] int64 (pad 0) and attention mask [B, T] (1 = real).
// REQUIRES: sequences is not empty.
std::pair<torch::Tensor, torch::Tensor> RightPad(const std::vector<std::vector<int64_t>>& sequences);

}  // namespace rlhf::model

#endif  // RLHF_COMMON_MODEL_SCORING_H_
