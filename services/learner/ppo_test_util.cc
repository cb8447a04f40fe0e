#include "services/learner/ppo_test_util.h"

#include <random>

#include "absl/strings/str_cat.h"
#include "common/model/generation.h"
#include "glog/logging.h"
#include "common/testing/tiny_llama.h"

namespace rlhf::learner::testing {

model::LlamaConfig TinyPolicyConfig() { return ::rlhf::testing::TinyLlamaConfig(); }

std::vector<rlhf::v1::Trajectory> SampleTrajectories(const model::Llama& policy, int n,
                                                     int max_new_tokens, uint64_t seed,
                                                     int64_t favoured_token,
                                                     const std::string& worker,
                                                     int64_t version) {
  std::mt19937_64 rng(seed);
  const int64_t vocab = policy->config().vocab_size;
  std::vector<std::vector<int64_t>> prompts(n);
  for (auto& p : prompts) {
    p.push_back(policy->config().bos_id);
    const int len = 2 + static_cast<int>(rng() % 4);
    for (int i = 0; i < len; ++i) p.push_back(3 + static_cast<int64_t>(rng() % (vocab - 3)));
  }
  auto engine = model::GenerationEngine::Create(policy);
  CHECK(engine.ok()) << engine.status();
  model::SamplingOptions sampling;
  sampling.max_new_tokens = max_new_tokens;
  sampling.seed = seed;
  auto generated = (*engine)->Generate(prompts, sampling);
  CHECK(generated.ok()) << generated.status();
  std::vector<rlhf::v1::Trajectory> out(n);
  for (int i = 0; i < n; ++i) {
    const model::GenerationResult& g = (*generated)[i];
    rlhf::v1::Trajectory& t = out[i];
    t.set_id(absl::StrCat(worker, "/", i));
    t.set_worker_id(worker);
    t.set_policy_version(version);
    t.set_prompt_index(i);
    for (int64_t id : prompts[i]) t.add_prompt_tokens(id);
    int favoured = 0;
    for (size_t j = 0; j < g.tokens.size(); ++j) {
      t.add_response_tokens(g.tokens[j]);
      t.add_behaviour_logprobs(g.logprobs[j]);
      t.add_ref_logprobs(g.logprobs[j]);
      favoured += g.tokens[j] == favoured_token;
    }
    t.set_reward(static_cast<float>(favoured) / static_cast<float>(g.tokens.size()));
    t.set_finish_reason(g.finish_reason == model::FinishReason::kEos
                            ? rlhf::v1::FINISH_REASON_EOS
                            : rlhf::v1::FINISH_REASON_LENGTH);
  }
  return out;
}

double MeanReward(const std::vector<rlhf::v1::Trajectory>& trajectories) {
  double sum = 0;
  for (const auto& t : trajectories) sum += t.reward();
  return trajectories.empty() ? 0.0 : sum / static_cast<double>(trajectories.size());
}

}  // namespace rlhf::learner::testing
