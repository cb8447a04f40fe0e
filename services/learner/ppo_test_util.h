// Test fixtures for the learner: a tiny random policy and trajectories sampled from it with a
// reward that favours one token, as a rollout worker would produce them.
#ifndef RLHF_SERVICES_LEARNER_PPO_TEST_UTIL_H_
#define RLHF_SERVICES_LEARNER_PPO_TEST_UTIL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/model/llama.h"
#include "rlhf/v1/trajectory.pb.h"

namespace rlhf::learner::testing {

// A 2-layer model with a 40-token vocabulary and a 64-token context.
model::LlamaConfig TinyPolicyConfig();

// Samples `n` responses of at most `max_new_tokens` from `policy` to random prompts (seeded),
// with behaviour and reference log-probs from `policy` itself (so the KL starts at 0) and
// reward = the fraction of response tokens equal to `favoured_token`. Ids are
// "<worker>/<i>"; policy_version = `version`.
std::vector<rlhf::v1::Trajectory> SampleTrajectories(const model::Llama& policy, int n,
                                                     int max_new_tokens, uint64_t seed,
                                                     int64_t favoured_token,
                                                     const std::string& worker = "w",
                                                     int64_t version = 0);

// Mean over `trajectories` of the reward defined above.
double MeanReward(const std::vector<rlhf::v1::Trajectory>& trajectories);

}  // namespace rlhf::learner::testing

#endif  // RLHF_SERVICES_LEARNER_PPO_TEST_UTIL_H_
