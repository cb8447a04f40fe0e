// Test data shared by the reward-trainer tests: a tiny scalar-head Llama and synthetic pairs
// whose preference depends on the content (learnable, and deterministic per seed).
#ifndef RLHF_COMMON_TRAIN_REWARD_TEST_UTIL_H_
#define RLHF_COMMON_TRAIN_REWARD_TEST_UTIL_H_

#include <cstdint>
#include <random>
#include <vector>

#include "common/model/llama_config.h"
#include "common/testing/tiny_llama.h"
#include "common/train/reward_trainer.h"

namespace rlhf::train::testing {

inline model::LlamaConfig TinyRewardConfig() {
  model::LlamaConfig c = ::rlhf::testing::TinyLlamaConfig();
  c.lm_head = false;
  c.scalar_head = true;
  return c;
}

// Random sequences; the chosen one of each pair ends in token 7, the rejected one in token 8,
// so that the preference depends on the content.
inline std::vector<TokenizedPair> SyntheticPairs(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<TokenizedPair> pairs(n);
  for (auto& p : pairs) {
    const int len = 4 + static_cast<int>(rng() % 12);
    for (int i = 0; i < len; ++i) p.chosen.push_back(10 + static_cast<int64_t>(rng() % 30));
    p.rejected = p.chosen;
    p.chosen.push_back(7);
    p.rejected.push_back(8);
    p.rejected.push_back(10 + static_cast<int64_t>(rng() % 30));
  }
  return pairs;
}

}  // namespace rlhf::train::testing

#endif  // RLHF_COMMON_TRAIN_REWARD_TEST_UTIL_H_
