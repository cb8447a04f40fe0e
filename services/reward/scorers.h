// Reward backends: something that turns (prompt, response) pairs into scalar scores.
//  - RuleScorer: programmatic, verifiable rewards from config (word rate, regex, length,
//    contains), summed with weights. Used for verifiable tasks and by the tests.
//  - ModelScorer: a scalar-head Llama; the score is the head's value at the last token of
//    prompt + response, normalised as (value - mean) / std when the model directory has a
//    reward_normalization.json (written by `rlhf train-rm --normalize`).
// Scorers are called from one thread at a time (the batcher's); they need not be thread-safe.
#ifndef RLHF_SERVICES_REWARD_SCORERS_H_
#define RLHF_SERVICES_REWARD_SCORERS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "rlhf/v1/config.pb.h"

namespace rlhf::reward {

struct ScoreInput {
  std::vector<int64_t> prompt_tokens;
  std::vector<int64_t> response_tokens;
  std::string prompt_text;
  std::string response_text;
};

class Scorer {
 public:
  virtual ~Scorer() = default;
  // One score per input, in order.
  virtual absl::StatusOr<std::vector<float>> Score(const std::vector<ScoreInput>& inputs) = 0;
  // Checks one input before it is queued (e.g. token ids against the vocabulary).
  virtual absl::Status Check(const ScoreInput& input) const = 0;
};

// Errors: InvalidArgument for no rules, an unspecified kind, a rule missing its word / pattern /
// target_length, or a pattern that does not compile.
absl::StatusOr<std::unique_ptr<Scorer>> CreateRuleScorer(
    const std::vector<rlhf::v1::RewardRule>& rules);

// Loads a scalar-head model from `path` (HF directory or .bin). Errors as LoadModel, and
// InvalidArgument when the model has no scalar head or a malformed reward_normalization.json.
absl::StatusOr<std::unique_ptr<Scorer>> CreateModelScorer(const std::string& path);

// Checks the scorer part of a reward config without loading a model: exactly one of `model`
// and `rules`, and rules that CreateRuleScorer accepts. Errors: InvalidArgument.
absl::Status ValidateScorerConfig(const rlhf::v1::RewardConfig& config);

// The scorer a reward config asks for (ValidateScorerConfig, then the model or the rules).
absl::StatusOr<std::unique_ptr<Scorer>> CreateScorer(const rlhf::v1::RewardConfig& config);

}  // namespace rlhf::reward

#endif  // RLHF_SERVICES_REWARD_SCORERS_H_
