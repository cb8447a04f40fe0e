#include "common/rl/rewards.h"

#include <gtest/gtest.h>

#include <string>

#include "common/rl/golden_test_util.h"

namespace rlhf::rl {
namespace {

using ::rlhf::rl::testing::AllClose;
using ::rlhf::rl::testing::MaxAbsDiff;
using ::rlhf::rl::testing::PpoGolden;
using Json = nlohmann::json;

class RewardsGoldenTest : public testing::DtypeTest {};

TEST_P(RewardsGoldenTest, KlEstimators) {
  const Json& c = PpoGolden().at("kl_estimate");
  const torch::Tensor logprobs = T(c.at("inputs").at("logprobs"));
  const torch::Tensor ref = T(c.at("inputs").at("ref_logprobs"));
  const Json& out = c.at("outputs");
  EXPECT_TRUE(AllClose(KlEstimate(logprobs, ref, KlEstimator::kK1), out.at("k1"), tol()));
  EXPECT_TRUE(AllClose(KlEstimate(logprobs, ref, KlEstimator::kK2), out.at("k2"), tol()));
  EXPECT_TRUE(AllClose(KlEstimate(logprobs, ref, KlEstimator::kK3), out.at("k3"), tol()));
  // Can fail: k3 is not k2.
  EXPECT_GT(MaxAbsDiff(KlEstimate(logprobs, ref, KlEstimator::kK2), out.at("k3")), 10 * tol());
}

TEST_P(RewardsGoldenTest, MissingEosPenalty) {
  const Json& c = PpoGolden().at("missing_eos_penalty");
  const Json& in = c.at("inputs");
  const torch::Tensor scores = T(in.at("scores"));
  const torch::Tensor eos = testing::ToTensor(in.at("contains_eos"), torch::kBool);
  MissingEosPenaltyOptions subtract{MissingEosMode::kSubtract,
                                    in.at("penalty_subtract").get<double>()};
  MissingEosPenaltyOptions replace{MissingEosMode::kReplace,
                                   in.at("penalty_replace").get<double>()};
  EXPECT_TRUE(AllClose(ApplyMissingEosPenalty(scores, eos, subtract),
                       c.at("outputs").at("subtract"), tol()));
  EXPECT_TRUE(
      AllClose(ApplyMissingEosPenalty(scores, eos, replace), c.at("outputs").at("replace"), tol()));
  EXPECT_FALSE(AllClose(ApplyMissingEosPenalty(scores, eos.logical_not(), subtract),
                        c.at("outputs").at("subtract"), tol()));
}

TEST_P(RewardsGoldenTest, TokenRewards) {
  const Json& c = PpoGolden().at("compute_token_rewards");
  const Json& in = c.at("inputs");
  const torch::Tensor scores = T(in.at("scores"));
  const torch::Tensor logprobs = T(in.at("logprobs"));
  const torch::Tensor ref = T(in.at("ref_logprobs"));
  const torch::Tensor mask = T(in.at("mask"));
  ASSERT_EQ(c.at("variants").size(), 2u);
  for (const auto& [name, v] : c.at("variants").items()) {
    SCOPED_TRACE(name);
    TokenRewardOptions options;
    options.estimator = v.at("estimator") == "k3" ? KlEstimator::kK3 : KlEstimator::kK1;
    if (!v.at("score_clip").is_null()) {
      options.score_clip =
          ClipRange{v.at("score_clip")[0].get<double>(), v.at("score_clip")[1].get<double>()};
    }
    ASSERT_TRUE(Validate(options).ok());
    const double kl_coef = v.at("kl_coef");
    const TokenRewards r = ComputeTokenRewards(scores, logprobs, ref, mask, kl_coef, options);
    EXPECT_TRUE(AllClose(r.rewards, v.at("rewards"), tol()));
    EXPECT_TRUE(AllClose(r.kl, v.at("kl"), tol()));
    // Can fail: the score one past the last real token (a common off-by-one) does not match.
    const torch::Tensor shifted_mask = torch::constant_pad_nd(mask, {1, 0}).slice(1, 0, -1);
    const TokenRewards wrong = ComputeTokenRewards(
        scores, logprobs, ref, torch::max(mask, shifted_mask), kl_coef, options);
    EXPECT_GT(MaxAbsDiff(wrong.rewards, v.at("rewards")), 10 * tol());
  }
}

GaeOptions GaeFromJson(const Json& v) {
  GaeOptions options;
  options.gamma = v.at("gamma");
  options.lambda = v.at("lam");
  return options;
}

TEST_P(RewardsGoldenTest, Gae) {
  const Json& c = PpoGolden().at("gae");
  const torch::Tensor rewards = T(c.at("inputs").at("rewards"));
  const torch::Tensor values = T(c.at("inputs").at("values"));
  const torch::Tensor mask = T(c.at("inputs").at("mask"));
  ASSERT_EQ(c.at("variants").size(), 3u);
  for (const auto& [name, v] : c.at("variants").items()) {
    SCOPED_TRACE(name);
    const GaeOptions options = GaeFromJson(v);
    ASSERT_TRUE(Validate(options).ok());
    const GaeResult gae = ComputeGae(rewards, values, mask, options);
    EXPECT_TRUE(AllClose(gae.advantages, v.at("advantages"), tol()));
    EXPECT_TRUE(AllClose(gae.returns, v.at("returns"), tol()));
    EXPECT_TRUE(AllClose(Whiten(gae.advantages, mask), v.at("advantages_whitened"), tol()));
    // Can fail: a different lambda gives different advantages.
    GaeOptions wrong = options;
    wrong.lambda -= 0.01;
    EXPECT_GT(MaxAbsDiff(ComputeGae(rewards, values, mask, wrong).advantages, v.at("advantages")),
              10 * tol());
  }
}

TEST_P(RewardsGoldenTest, GaeIgnoresPaddedRewardsAndValues) {
  const Json& c = PpoGolden().at("gae");
  const torch::Tensor mask = T(c.at("inputs").at("mask"));
  const torch::Tensor pad = (1 - mask) * 7.0;
  const GaeResult gae = ComputeGae(T(c.at("inputs").at("rewards")) + pad,
                                   T(c.at("inputs").at("values")) - pad, mask, GaeOptions{});
  const Json& v = c.at("variants").at("gamma1.0_lam0.95");
  EXPECT_TRUE(AllClose(gae.advantages, v.at("advantages"), tol()));
  EXPECT_TRUE(AllClose(gae.returns, v.at("returns"), tol()));
}

TEST_P(RewardsGoldenTest, Vtrace) {
  const Json& c = PpoGolden().at("vtrace");
  const Json& in = c.at("inputs");
  ASSERT_EQ(c.at("variants").size(), 2u);
  for (const auto& [name, v] : c.at("variants").items()) {
    SCOPED_TRACE(name);
    VtraceOptions options;
    options.gamma = v.at("gamma");
    options.rho_bar = v.at("rho_bar");
    options.c_bar = v.at("c_bar");
    ASSERT_TRUE(Validate(options).ok());
    const VtraceResult out =
        ComputeVtrace(T(in.at("behav_logprobs")), T(in.at("target_logprobs")), T(in.at("rewards")),
                      T(in.at("values")), T(in.at("mask")), options);
    EXPECT_TRUE(AllClose(out.vs, v.at("vs"), tol()));
    EXPECT_TRUE(AllClose(out.pg_advantages, v.at("pg_advantages"), tol()));
    // Can fail: swapping behaviour and target inverts the ratios.
    const VtraceResult swapped =
        ComputeVtrace(T(in.at("target_logprobs")), T(in.at("behav_logprobs")), T(in.at("rewards")),
                      T(in.at("values")), T(in.at("mask")), options);
    EXPECT_GT(MaxAbsDiff(swapped.vs, v.at("vs")), 10 * tol());
  }
}

TEST_P(RewardsGoldenTest, TruncatedIsWeight) {
  const Json& c = PpoGolden().at("truncated_is_weight");
  const Json& in = c.at("inputs");
  const ClipRange range{in.at("low").get<double>(), in.at("high").get<double>()};
  EXPECT_TRUE(
      AllClose(TruncatedIsWeight(T(in.at("old_logprobs")), T(in.at("rollout_logprobs")), range),
               c.at("weights"), tol()));
  EXPECT_GT(MaxAbsDiff(TruncatedIsWeight(T(in.at("old_logprobs")), T(in.at("rollout_logprobs")),
                                         ClipRange{0.6, 5.0}),
                       c.at("weights")),
            10 * tol());
}

TEST_P(RewardsGoldenTest, GroupBaselines) {
  const Json& c = PpoGolden().at("group_baselines");
  const double eps = c.at("eps");
  const struct {
    const char* rewards;
    const char* expected;
    GroupBaseline baseline;
  } cases[] = {{"rewards", "grpo_scaled", GroupBaseline::kMeanStd},
               {"rewards", "grpo_unscaled", GroupBaseline::kMean},
               {"rewards", "rloo", GroupBaseline::kLeaveOneOut},
               {"rewards_binary", "grpo_scaled_binary", GroupBaseline::kMeanStd},
               {"rewards_binary", "rloo_binary", GroupBaseline::kLeaveOneOut}};
  for (const auto& test_case : cases) {
    SCOPED_TRACE(test_case.expected);
    const GroupAdvantageOptions options{test_case.baseline, eps};
    const torch::Tensor rewards = T(c.at(test_case.rewards));
    EXPECT_TRUE(AllClose(GroupAdvantages(rewards, options), c.at(test_case.expected), tol()));
  }
  // Can fail: the biased std gives different GRPO advantages.
  const torch::Tensor rewards = T(c.at("rewards"));
  const torch::Tensor mean = rewards.mean(1, true);
  const torch::Tensor biased = (rewards - mean) / (rewards.std(1, false, true) + eps);
  EXPECT_GT(MaxAbsDiff(biased, c.at("grpo_scaled")), 10 * tol());
}

RLHF_INSTANTIATE_DTYPE_TEST_SUITE(RewardsGoldenTest);

TEST(RewardsTest, MeanSequenceKlIsMeanOverRowsOfMaskedSums) {
  const torch::Tensor kl = torch::tensor({{1.0, 2.0, 9.0}, {3.0, 9.0, 9.0}}, torch::kFloat64);
  const torch::Tensor mask = torch::tensor({{1, 1, 0}, {1, 0, 0}});
  EXPECT_DOUBLE_EQ(MeanSequenceKl(kl, mask).item<double>(), 3.0);
}

TEST(RewardsTest, ValidateRejectsOutOfRangeOptions) {
  EXPECT_TRUE(Validate(GaeOptions{}).ok());
  EXPECT_EQ(Validate(GaeOptions{1.5, 0.9}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Validate(GaeOptions{1.0, -0.1}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Validate(VtraceOptions{1.0, 0.0, 1.0}).code(), absl::StatusCode::kInvalidArgument);
  TokenRewardOptions rewards;
  rewards.score_clip = ClipRange{1.0, -1.0};
  EXPECT_EQ(Validate(rewards).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Validate(GroupAdvantageOptions{GroupBaseline::kMeanStd, -1.0}).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(RewardsTest, ShapeMismatchIsAProgrammerError) {
  EXPECT_THROW(ComputeGae(torch::ones({2, 3}), torch::ones({2, 4}), torch::ones({2, 4}), {}),
               c10::Error);
  EXPECT_THROW(GroupAdvantages(torch::ones({3, 1}), {}), c10::Error);
}

}  // namespace
}  // namespace rlhf::rl
