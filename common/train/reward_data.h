// From preference records (common/data) to what the reward trainer and `rlhf eval` consume:
// token sequences built exactly as the reward service scores them, the context-length check
// under the jobs' bad-data policy, and the length baselines an RM must beat.
#ifndef RLHF_COMMON_TRAIN_REWARD_DATA_H_
#define RLHF_COMMON_TRAIN_REWARD_DATA_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/data/preference_data.h"
#include "common/tokenizer/tokenizer.h"
#include "common/train/reward_trainer.h"

namespace rlhf::train {

// BOS, Encode(prompt), Encode(response): the prompt tokens a rollout worker leases followed by
// the response, i.e. the sequence whose last-token value the reward service returns.
std::vector<int64_t> ScoreTokens(const tokenizer::Tokenizer& tok, std::string_view prompt,
                                 std::string_view response);

// Tokenizes `pairs` (read from `path`). A pair with a side longer than `max_seq_len` tokens is
// a bad record under `options` (skipped and added to `report`, or an error in strict mode or
// past options.max_bad skipped records in all of `report`). `kept_lines`, when not null, gets
// the file line of each pair kept.
absl::StatusOr<std::vector<TokenizedPair>> TokenizePairs(
    const std::vector<data::PreferencePair>& pairs, const tokenizer::Tokenizer& tok,
    int64_t max_seq_len, const std::string& path, const data::ReadOptions& options,
    data::ReadReport* report, std::vector<int64_t>* kept_lines = nullptr);

// Accuracy of "the longer response wins" and "the shorter response wins" (response lengths in
// bytes; a tie counts half), for hard labels (p_chosen >= 0.5 means chosen is preferred).
struct LengthBaselines {
  double longer_wins = 0;
  double shorter_wins = 0;
};
LengthBaselines ComputeLengthBaselines(const std::vector<data::PreferencePair>& pairs);

// Drops the pairs of `pairs` whose (prompt, chosen, rejected) also occur in `exclude`; returns
// how many were dropped.
int64_t ExcludePairs(const std::vector<data::PreferencePair>& exclude,
                     std::vector<data::PreferencePair>* pairs);

}  // namespace rlhf::train

#endif  // RLHF_COMMON_TRAIN_REWARD_DATA_H_
