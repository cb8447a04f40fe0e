// Test data shared by the trainer tests: a tiny scalar-head Llama, synthetic preference pairs
// whose preference depends on the content, and synthetic demonstrations (learnable, and
// deterministic per seed).
#ifndef RLHF_COMMON_TRAIN_TRAIN_TEST_UTIL_H_
#define RLHF_COMMON_TRAIN_TRAIN_TEST_UTIL_H_

#include <cstdint>
#include <random>
#include <vector>

#include "common/model/llama_config.h"
#include "common/testing/tiny_llama.h"
#include "common/train/reward_trainer.h"
#include "common/train/sft_trainer.h"

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

// A prompt of random tokens, a separator, then a response that repeats the prompt with every
// token + 1: learnable, and only the response is trained on.
inline std::vector<TokenizedExample> SyntheticExamples(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<TokenizedExample> out(n);
  for (auto& e : out) {
    const int len = 3 + static_cast<int>(rng() % 8);
    std::vector<int64_t> prompt;
    for (int i = 0; i < len; ++i) prompt.push_back(5 + static_cast<int64_t>(rng() % 30));
    e.tokens.push_back(1);
    e.train.push_back(0);
    for (int64_t t : prompt) {
      e.tokens.push_back(t);
      e.train.push_back(0);
    }
    e.tokens.push_back(3);  // separator
    e.train.push_back(0);
    for (int64_t t : prompt) {
      e.tokens.push_back(t + 1);
      e.train.push_back(1);
    }
  }
  return out;
}

}  // namespace rlhf::train::testing

#endif  // RLHF_COMMON_TRAIN_TRAIN_TEST_UTIL_H_
