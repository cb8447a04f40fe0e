// A small valid trajectory for the tests of the learner's queue and journal: prompt {1, 2},
// response {3, 4, 5} with finite log-probs, reward 0.5, lease "L1", worker "w".
#ifndef RLHF_SERVICES_LEARNER_TRAJECTORY_TEST_UTIL_H_
#define RLHF_SERVICES_LEARNER_TRAJECTORY_TEST_UTIL_H_

#include <cstdint>
#include <string>

#include "rlhf/v1/trajectory.pb.h"

namespace rlhf::learner::testing {

inline rlhf::v1::Trajectory MakeTrajectory(const std::string& id, int64_t version = 0) {
  rlhf::v1::Trajectory t;
  t.set_id(id);
  t.set_worker_id("w");
  t.set_policy_version(version);
  t.set_lease_id("L1");
  for (int64_t tok : {1, 2}) t.add_prompt_tokens(tok);
  for (int64_t tok : {3, 4, 5}) {
    t.add_response_tokens(tok);
    t.add_behaviour_logprobs(-0.5f);
    t.add_ref_logprobs(-0.25f);
  }
  t.set_reward(0.5f);
  return t;
}

}  // namespace rlhf::learner::testing

#endif  // RLHF_SERVICES_LEARNER_TRAJECTORY_TEST_UTIL_H_
