#include "common/model/generation.h"

#include <algorithm>

#include <gtest/gtest.h>

#include "common/model/scoring.h"

namespace rlhf::model {
namespace {

LlamaConfig TinyConfig() {
  LlamaConfig c;
  c.dim = 32;
  c.hidden_dim = 64;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.vocab_size = 50;
  c.max_seq_len = 64;
  c.scalar_head = true;
  return c;
}

class GenerationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto model = CreateRandomLlama(TinyConfig(), /*seed=*/7);
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = *model;
    // Larger weights than the init default make the distributions peaky enough to matter.
    torch::NoGradGuard no_grad;
    for (auto& p : model_->parameters()) {
      if (p.dim() == 2) p.mul_(5);
    }
    auto engine = GenerationEngine::Create(model_);
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = std::move(*engine);
  }
  Llama model_{nullptr};
  std::unique_ptr<GenerationEngine> engine_;
  std::vector<std::vector<int64_t>> prompts_ = {
      {1, 5, 9, 13, 2, 7, 30}, {1, 4}, {1, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 3}, {1, 20, 21}};
};

TEST_F(GenerationTest, SampledSequenceDoesNotDependOnBatchMates) {
  SamplingOptions opts;
  opts.temperature = 0.9;
  opts.top_k = 20;
  opts.top_p = 0.95;
  opts.max_new_tokens = 12;
  std::vector<uint64_t> seeds = {11, 12, 13, 14};
  auto batched = engine_->Generate(prompts_, opts, seeds);
  ASSERT_TRUE(batched.ok()) << batched.status();
  for (size_t i = 0; i < prompts_.size(); ++i) {
    auto alone = engine_->Generate({prompts_[i]}, opts, {seeds[i]});
    ASSERT_TRUE(alone.ok());
    EXPECT_EQ((*alone)[0].tokens, (*batched)[i].tokens) << i;
    ASSERT_EQ((*alone)[0].logprobs.size(), (*batched)[i].logprobs.size());
    for (size_t t = 0; t < (*alone)[0].logprobs.size(); ++t) {
      EXPECT_NEAR((*alone)[0].logprobs[t], (*batched)[i].logprobs[t], 2e-4);
    }
  }
}

TEST_F(GenerationTest, SameSeedSameTokensDifferentSeedDifferentTokens) {
  SamplingOptions opts;
  opts.max_new_tokens = 20;
  opts.stop_at_eos = false;
  opts.seed = 3;
  auto a = engine_->Generate(prompts_, opts);
  auto b = engine_->Generate(prompts_, opts);
  opts.seed = 4;
  auto c = engine_->Generate(prompts_, opts);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  int differing = 0;
  for (size_t i = 0; i < prompts_.size(); ++i) {
    EXPECT_EQ((*a)[i].tokens, (*b)[i].tokens);
    differing += (*a)[i].tokens != (*c)[i].tokens;
  }
  EXPECT_GT(differing, 0);
}

TEST_F(GenerationTest, LogProbsAgreeWithTeacherForcedScoring) {
  SamplingOptions opts;
  opts.temperature = 0.7;
  opts.max_new_tokens = 10;
  opts.stop_at_eos = false;
  auto out = engine_->Generate(prompts_, opts);
  ASSERT_TRUE(out.ok());
  std::vector<std::vector<int64_t>> full;
  for (size_t i = 0; i < prompts_.size(); ++i) {
    full.push_back(prompts_[i]);
    full.back().insert(full.back().end(), (*out)[i].tokens.begin(), (*out)[i].tokens.end());
  }
  auto scored = ScoreTokenLogProbs(model_, full, opts.temperature);
  ASSERT_TRUE(scored.ok()) << scored.status();
  for (size_t i = 0; i < prompts_.size(); ++i) {
    const size_t offset = prompts_[i].size() - 1;
    for (size_t t = 0; t < (*out)[i].logprobs.size(); ++t) {
      EXPECT_NEAR((*scored)[i][offset + t], (*out)[i].logprobs[t], 2e-4) << i << " " << t;
    }
  }
}

TEST_F(GenerationTest, TopKOneIsGreedy) {
  SamplingOptions greedy;
  greedy.temperature = 0;
  greedy.max_new_tokens = 8;
  SamplingOptions top1 = greedy;
  top1.temperature = 1.3;
  top1.top_k = 1;
  auto a = engine_->Generate(prompts_, greedy);
  auto b = engine_->Generate(prompts_, top1);
  ASSERT_TRUE(a.ok() && b.ok());
  for (size_t i = 0; i < prompts_.size(); ++i) EXPECT_EQ((*a)[i].tokens, (*b)[i].tokens);
}

TEST_F(GenerationTest, StopsAtEosPerSequence) {
  SamplingOptions opts;
  opts.temperature = 0;
  opts.max_new_tokens = 30;
  opts.stop_at_eos = false;
  auto free_run = engine_->Generate(prompts_, opts);
  ASSERT_TRUE(free_run.ok());
  // The same network with EOS set to the 4th token the first prompt produces.
  const int64_t eos = (*free_run)[0].tokens[3];
  LlamaConfig config = TinyConfig();
  config.eos_id = eos;
  auto same = CreateRandomLlama(config, /*seed=*/7);
  ASSERT_TRUE(same.ok());
  {
    torch::NoGradGuard no_grad;
    for (auto& p : (*same)->parameters()) {
      if (p.dim() == 2) p.mul_(5);
    }
  }
  auto engine = GenerationEngine::Create(*same);
  ASSERT_TRUE(engine.ok());
  opts.stop_at_eos = true;
  auto out = (*engine)->Generate(prompts_, opts);
  ASSERT_TRUE(out.ok());
  int stopped = 0;
  for (size_t i = 0; i < prompts_.size(); ++i) {
    const auto& full = (*free_run)[i].tokens;
    auto it = std::find(full.begin(), full.end(), eos);
    std::vector<int64_t> expected(full.begin(), it == full.end() ? it : it + 1);
    EXPECT_EQ((*out)[i].tokens, expected) << i;
    EXPECT_EQ((*out)[i].logprobs.size(), expected.size());
    EXPECT_EQ((*out)[i].finish_reason,
              it == full.end() ? FinishReason::kLength : FinishReason::kEos);
    stopped += it != full.end();
  }
  EXPECT_GE(stopped, 1);
  EXPECT_LE((*out)[0].tokens.size(), 4u);
}

TEST_F(GenerationTest, RejectsBadInput) {
  SamplingOptions opts;
  EXPECT_EQ(engine_->Generate({}, opts).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(engine_->Generate({{}}, opts).status().code(), absl::StatusCode::kInvalidArgument);
  auto bad_id = engine_->Generate({{1, 50}}, opts);
  EXPECT_EQ(bad_id.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad_id.status().message().find("outside vocab"), std::string::npos);
  opts.max_new_tokens = 64;
  auto too_long = engine_->Generate({{1, 2}}, opts);
  EXPECT_NE(too_long.status().message().find("max_seq_len"), std::string::npos);
  opts.max_new_tokens = 4;
  opts.top_p = 0;
  EXPECT_NE(engine_->Generate({{1}}, opts).status().message().find("top_p"), std::string::npos);
  opts.top_p = 1;
  opts.temperature = -1;
  EXPECT_NE(engine_->Generate({{1}}, opts).status().message().find("temperature"),
            std::string::npos);
  EXPECT_EQ(engine_->Generate({{1}, {2}}, SamplingOptions(), {1}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(GenerationTest, ValuesArePerPositionAndBatchIndependent) {
  auto batched = ScoreValues(model_, prompts_);
  ASSERT_TRUE(batched.ok()) << batched.status();
  for (size_t i = 0; i < prompts_.size(); ++i) {
    auto alone = ScoreValues(model_, {prompts_[i]});
    ASSERT_TRUE(alone.ok());
    ASSERT_EQ((*alone)[0].size(), prompts_[i].size());
    for (size_t t = 0; t < prompts_[i].size(); ++t) {
      EXPECT_NEAR((*alone)[0][t], (*batched)[i][t], 1e-5);
    }
  }
  LlamaConfig no_head = TinyConfig();
  no_head.scalar_head = false;
  auto plain = CreateRandomLlama(no_head, 1);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(ScoreValues(*plain, prompts_).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace rlhf::model
