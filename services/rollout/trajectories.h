// The pieces of the rollout worker's loop that are pure data shaping: prompt tokens of a
// lease, Trajectory messages from generations, and the Reference / Reward requests for them
// and their answers. No I/O; tested through worker_test.cc.
#ifndef RLHF_SERVICES_ROLLOUT_TRAJECTORIES_H_
#define RLHF_SERVICES_ROLLOUT_TRAJECTORIES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model/generation.h"
#include "common/tokenizer/tokenizer.h"
#include "rlhf/v1/services.pb.h"
#include "rlhf/v1/trajectory.pb.h"

namespace rlhf::rollout {

// Returns the token ids of each prompt of `lease`: its tokens, or its text encoded with BOS
// first when it has no tokens. `tokenizer` may be null. InvalidArgument for a text prompt
// without a tokenizer.
absl::StatusOr<std::vector<std::vector<int64_t>>> LeasePromptTokens(
    const rlhf::v1::PromptLease& lease, const tokenizer::Tokenizer* tokenizer);

// Returns one Trajectory per generation (no ref_logprobs or reward yet), ids
// "<worker_id>/<*next_seq>" with *next_seq advanced. REQUIRES: prompts and results have one
// entry per prompt of `lease`.
std::vector<rlhf::v1::Trajectory> BuildTrajectories(
    const rlhf::v1::PromptLease& lease, const std::vector<std::vector<int64_t>>& prompts,
    const std::vector<model::GenerationResult>& results, int64_t policy_version,
    const std::string& worker_id, uint64_t* next_seq);

// The reference request: prompt + response of each trajectory, scored from the response's first
// token at `temperature` (0 = greedy sampling, scored at 1).
rlhf::v1::LogProbsRequest MakeLogProbsRequest(const std::vector<rlhf::v1::Trajectory>& trajectories,
                                              float temperature);

// The reward request: tokens of each trajectory, and texts when `tokenizer` is not null (the
// lease's prompt text when it has one, else the decoded prompt).
rlhf::v1::ScoreRequest MakeScoreRequest(const rlhf::v1::PromptLease& lease,
                                        const std::vector<rlhf::v1::Trajectory>& trajectories,
                                        const tokenizer::Tokenizer* tokenizer);

// Sets ref_logprobs and reward of each trajectory. Internal when the answers do not have one
// result per trajectory, with one log-prob per response token.
absl::Status AttachScores(const rlhf::v1::LogProbsResponse& ref,
                          const rlhf::v1::ScoreResponse& reward,
                          std::vector<rlhf::v1::Trajectory>* trajectories);

}  // namespace rlhf::rollout

#endif  // RLHF_SERVICES_ROLLOUT_TRAJECTORIES_H_
