#include "common/rl/losses.h"

#include <gtest/gtest.h>

#include "common/rl/golden_test_util.h"

namespace rlhf::rl {
namespace {

using ::rlhf::rl::testing::AllClose;
using ::rlhf::rl::testing::MaxAbsDiff;
using ::rlhf::rl::testing::PpoGolden;
using Json = nlohmann::json;

PolicyLossOptions PolicyOptionsFromJson(const Json& params) {
  PolicyLossOptions options;
  options.clip_low = params.at("clip_eps");
  options.clip_high = params.value("clip_eps_high", options.clip_low);
  if (params.contains("dual_clip")) options.dual_clip = params.at("dual_clip").get<double>();
  if (params.value("agg", "token-mean") == "seq-mean-token-mean") {
    options.aggregation = LossAggregation::kSeqMeanTokenMean;
  }
  return options;
}

class LossesGoldenTest : public testing::DtypeTest {};

TEST_P(LossesGoldenTest, PpoPolicyLoss) {
  const Json& c = PpoGolden().at("ppo_policy_loss");
  const Json& in = c.at("inputs");
  ASSERT_EQ(c.at("variants").size(), 4u);
  for (const auto& [name, v] : c.at("variants").items()) {
    SCOPED_TRACE(name);
    const PolicyLossOptions options = PolicyOptionsFromJson(v.at("params"));
    ASSERT_TRUE(Validate(options).ok());
    const torch::Tensor logprobs = Leaf(in.at("logprobs"));
    const PolicyLossResult out = PpoPolicyLoss(logprobs, T(in.at("old_logprobs")),
                                               T(in.at("advantages")), T(in.at("mask")), options);
    out.loss.backward();
    EXPECT_TRUE(AllClose(out.loss, v.at("loss"), tol()));
    EXPECT_TRUE(AllClose(out.per_token, v.at("per_token"), tol()));
    EXPECT_TRUE(AllClose(out.clipfrac, v.at("clipfrac"), tol()));
    EXPECT_TRUE(AllClose(out.approx_kl, v.at("approx_kl"), tol()));
    EXPECT_TRUE(AllClose(out.ratio_mean, v.at("ratio_mean"), tol()));
    EXPECT_TRUE(AllClose(logprobs.grad(), v.at("grad_logprobs"), tol()));
    EXPECT_FALSE(out.clipfrac.requires_grad());
  }
}

// The comparison can fail: one perturbed log-prob changes the loss and its gradient.
TEST_P(LossesGoldenTest, PerturbedPolicyLossDoesNotMatch) {
  const Json& c = PpoGolden().at("ppo_policy_loss");
  const Json& in = c.at("inputs");
  const Json& v = c.at("variants").at("token_mean_eps0.2");
  torch::Tensor logprobs = T(in.at("logprobs"));
  // The fixture's first unmasked token (a masked one would change nothing).
  const torch::Tensor real = T(in.at("mask")).nonzero();
  ASSERT_GT(real.size(0), 0) << "the fixture's mask has no real token";
  logprobs[real[0][0].item<int64_t>()][real[0][1].item<int64_t>()] +=
      1e5 * tol();  // 1e-4 in float64, 1 in float32.
  logprobs.requires_grad_(true);
  const PolicyLossResult out =
      PpoPolicyLoss(logprobs, T(in.at("old_logprobs")), T(in.at("advantages")), T(in.at("mask")),
                    PolicyOptionsFromJson(v.at("params")));
  out.loss.backward();
  EXPECT_GT(MaxAbsDiff(out.loss, v.at("loss")), 10 * tol());
  EXPECT_GT(MaxAbsDiff(logprobs.grad(), v.at("grad_logprobs")), 10 * tol());
}

TEST_P(LossesGoldenTest, ClippedValueLoss) {
  const Json& c = PpoGolden().at("clipped_value_loss");
  const Json& in = c.at("inputs");
  ASSERT_EQ(c.at("variants").size(), 3u);
  for (const auto& [name, v] : c.at("variants").items()) {
    SCOPED_TRACE(name);
    ValueLossOptions options;
    options.clip = v.at("clip_eps").is_null()
                       ? std::nullopt
                       : std::optional<double>(v.at("clip_eps").get<double>());
    ASSERT_TRUE(Validate(options).ok());
    const torch::Tensor values = Leaf(in.at("values"));
    const ValueLossResult out = ClippedValueLoss(values, T(in.at("old_values")),
                                                 T(in.at("returns")), T(in.at("mask")), options);
    out.loss.backward();
    EXPECT_TRUE(AllClose(out.loss, v.at("loss"), tol()));
    EXPECT_TRUE(AllClose(out.clipfrac, v.at("clipfrac"), tol()));
    EXPECT_TRUE(AllClose(values.grad(), v.at("grad_values"), tol()));
  }
}

TEST_P(LossesGoldenTest, DecoupledPpoLoss) {
  const Json& c = PpoGolden().at("decoupled_ppo_loss");
  const Json& in = c.at("inputs");
  ASSERT_EQ(c.at("variants").size(), 2u);
  for (const auto& [name, v] : c.at("variants").items()) {
    SCOPED_TRACE(name);
    DecoupledLossOptions options;
    options.clip_low = options.clip_high = in.at("clip_eps");
    if (!v.at("behav_weight_cap").is_null()) {
      options.behav_weight_cap = v.at("behav_weight_cap").get<double>();
    }
    ASSERT_TRUE(Validate(options).ok());
    const torch::Tensor logprobs = Leaf(in.at("logprobs"));
    const DecoupledLossResult out =
        DecoupledPpoLoss(logprobs, T(in.at("prox_logprobs")), T(in.at("behav_logprobs")),
                         T(in.at("advantages")), T(in.at("mask")), options);
    out.loss.backward();
    EXPECT_TRUE(AllClose(out.loss, v.at("loss"), tol()));
    EXPECT_TRUE(AllClose(logprobs.grad(), v.at("grad_logprobs"), tol()));
    // Can fail: without the behaviour weights this is plain PPO against prox, a different loss.
    const DecoupledLossResult unweighted =
        DecoupledPpoLoss(T(in.at("logprobs")), T(in.at("prox_logprobs")), T(in.at("prox_logprobs")),
                         T(in.at("advantages")), T(in.at("mask")), options);
    EXPECT_GT(MaxAbsDiff(unweighted.loss, v.at("loss")), 10 * tol());
  }
}

TEST_P(LossesGoldenTest, GrpoLoss) {
  const Json& c = PpoGolden().at("grpo_loss");
  const Json& in = c.at("inputs");
  GrpoLossOptions options;
  options.clip_low = options.clip_high = in.at("clip_eps");
  options.kl_coef = in.at("beta");
  ASSERT_TRUE(Validate(options).ok());
  const torch::Tensor logprobs = Leaf(in.at("logprobs"));
  const GrpoLossResult out = GrpoLoss(logprobs, T(in.at("old_logprobs")), T(in.at("ref_logprobs")),
                                      T(in.at("advantages")), T(in.at("mask")), options);
  out.loss.backward();
  EXPECT_TRUE(AllClose(out.loss, c.at("loss"), tol()));
  EXPECT_TRUE(AllClose(logprobs.grad(), c.at("grad_logprobs"), tol()));
  // [B] advantages broadcast the same way as [B, 1].
  const GrpoLossResult flat =
      GrpoLoss(T(in.at("logprobs")), T(in.at("old_logprobs")), T(in.at("ref_logprobs")),
               T(in.at("advantages")).squeeze(1), T(in.at("mask")), options);
  EXPECT_TRUE(AllClose(flat.loss, c.at("loss"), tol()));
  // Can fail: dropping the KL term, or token-mean aggregation, changes the loss.
  GrpoLossOptions no_kl = options;
  no_kl.kl_coef = 0;
  GrpoLossOptions token_mean = options;
  token_mean.aggregation = LossAggregation::kTokenMean;
  for (const GrpoLossOptions& wrong : {no_kl, token_mean}) {
    const GrpoLossResult other =
        GrpoLoss(T(in.at("logprobs")), T(in.at("old_logprobs")), T(in.at("ref_logprobs")),
                 T(in.at("advantages")), T(in.at("mask")), wrong);
    EXPECT_GT(MaxAbsDiff(other.loss, c.at("loss")), 10 * tol());
  }
}

RLHF_INSTANTIATE_DTYPE_TEST_SUITE(LossesGoldenTest);

// The golden's clip-higher, dual-clip and behaviour-cap variants coincide with the plain ones on
// its data, so these branches are pinned with hand-computed single-token cases.
torch::Tensor Scalar2d(double value) { return torch::full({1, 1}, value, torch::kFloat64); }

TEST(LossesTest, ClipHigherRaisesTheUpperBound) {
  const torch::Tensor logp = Scalar2d(std::log(1.5)), old = Scalar2d(0), adv = Scalar2d(2);
  const torch::Tensor mask = Scalar2d(1);
  PolicyLossOptions options;
  EXPECT_NEAR(PpoPolicyLoss(logp, old, adv, mask, options).loss.item<double>(), -2 * 1.2, 1e-12);
  options.clip_high = 0.28;
  const PolicyLossResult out = PpoPolicyLoss(logp, old, adv, mask, options);
  EXPECT_NEAR(out.loss.item<double>(), -2 * 1.28, 1e-12);
  EXPECT_EQ(out.clipfrac.item<double>(), 1.0);
}

TEST(LossesTest, DualClipCapsNegativeAdvantageLoss) {
  torch::Tensor logp = Scalar2d(std::log(10.0));
  logp.requires_grad_(true);
  const torch::Tensor old = Scalar2d(0), adv = Scalar2d(-1), mask = Scalar2d(1);
  PolicyLossOptions options;
  EXPECT_NEAR(PpoPolicyLoss(logp, old, adv, mask, options).loss.item<double>(), 10.0, 1e-12);
  options.dual_clip = 3.0;
  const PolicyLossResult out = PpoPolicyLoss(logp, old, adv, mask, options);
  out.loss.backward();
  EXPECT_NEAR(out.loss.item<double>(), 3.0, 1e-12);
  EXPECT_EQ(logp.grad().item<double>(), 0.0);
}

TEST(LossesTest, BehaviourWeightAboveCapDropsTheToken) {
  const torch::Tensor logp = torch::zeros({1, 2}, torch::kFloat64);
  const torch::Tensor prox = torch::zeros({1, 2}, torch::kFloat64);
  const torch::Tensor behav = torch::tensor({{0.0, -std::log(3.0)}}, torch::kFloat64);
  const torch::Tensor adv = torch::ones({1, 2}, torch::kFloat64);
  const torch::Tensor mask = torch::ones({1, 2}, torch::kFloat64);
  DecoupledLossOptions options;
  EXPECT_NEAR(DecoupledPpoLoss(logp, prox, behav, adv, mask, options).loss.item<double>(),
              (-1.0 - 3.0) / 2, 1e-12);
  options.behav_weight_cap = 2.0;
  const DecoupledLossResult out = DecoupledPpoLoss(logp, prox, behav, adv, mask, options);
  EXPECT_NEAR(out.loss.item<double>(), -1.0 / 2, 1e-12);
  EXPECT_EQ(out.behav_weights[0][1].item<double>(), 0.0);
}

TEST(LossesTest, ValidateRejectsOutOfRangeOptions) {
  EXPECT_TRUE(Validate(PolicyLossOptions{}).ok());
  PolicyLossOptions policy;
  policy.clip_low = 1.0;
  EXPECT_EQ(Validate(policy).code(), absl::StatusCode::kInvalidArgument);
  policy = PolicyLossOptions{};
  policy.dual_clip = 0.5;
  EXPECT_EQ(Validate(policy).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Validate(ValueLossOptions{-0.1}).code(), absl::StatusCode::kInvalidArgument);
  DecoupledLossOptions decoupled;
  decoupled.behav_weight_cap = 0.0;
  EXPECT_EQ(Validate(decoupled).code(), absl::StatusCode::kInvalidArgument);
  GrpoLossOptions grpo;
  grpo.kl_coef = -1;
  EXPECT_EQ(Validate(grpo).code(), absl::StatusCode::kInvalidArgument);
}

TEST(LossesTest, ShapeMismatchIsAProgrammerError) {
  const torch::Tensor a = torch::zeros({2, 3}), b = torch::zeros({2, 4});
  EXPECT_THROW(PpoPolicyLoss(a, b, a, a, {}), c10::Error);
  EXPECT_THROW(GrpoLoss(a, a, a, torch::zeros({3}), a, {}), c10::Error);
}

}  // namespace
}  // namespace rlhf::rl
