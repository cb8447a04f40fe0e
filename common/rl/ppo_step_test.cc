#include "common/rl/ppo_step.h"

#include <gtest/gtest.h>

#include <cmath>

#include "common/rl/golden_test_util.h"
#include "common/rl/kl_controller.h"

namespace rlhf::rl {
namespace {

using ::rlhf::rl::testing::AllClose;
using ::rlhf::rl::testing::MaxAbsDiff;
using ::rlhf::rl::testing::PpoGolden;
using Json = nlohmann::json;

// The end_to_end golden: penalty subtract 1, k1 reward (beta 0.05, score clip [-10, 10]), GAE
// (1, 0.95) on the old values, whitened advantages, PPO eps 0.2 + 0.1 * value loss eps 0.2.
PpoStepOptions EndToEndOptions(const Json& inputs) {
  PpoStepOptions options;
  options.eos_penalty = {MissingEosMode::kSubtract, 1.0};
  options.token_rewards.estimator = KlEstimator::kK1;
  options.token_rewards.score_clip = ClipRange{-10.0, 10.0};
  options.gae = {1.0, 0.95};
  options.policy.clip_low = options.policy.clip_high = 0.2;
  options.value.clip = 0.2;
  options.vf_coef = inputs.at("vf_coef");
  return options;
}

class PpoStepGoldenTest : public testing::DtypeTest {
 protected:
  const Json& in_ = PpoGolden().at("end_to_end").at("inputs");
  const Json& out_ = PpoGolden().at("end_to_end").at("outputs");

  RolloutBatch Batch() const {
    RolloutBatch batch;
    batch.scores = T(in_.at("scores"));
    batch.contains_eos = testing::ToTensor(in_.at("contains_eos"), torch::kBool);
    batch.logprobs = T(in_.at("logprobs"));
    batch.ref_logprobs = T(in_.at("ref_logprobs"));
    batch.values = T(in_.at("old_values"));
    batch.mask = T(in_.at("mask"));
    return batch;
  }
};

TEST_P(PpoStepGoldenTest, EndToEnd) {
  const PpoStepOptions options = EndToEndOptions(in_);
  ASSERT_TRUE(Validate(options).ok());
  KlControllerOptions kl_options;
  kl_options.init_kl_coef = 0.05;
  auto kl_controller = KlController::Create(kl_options);
  ASSERT_TRUE(kl_controller.ok());

  const RolloutBatch batch = Batch();
  const PpoTargets targets = ComputePpoTargets(batch, kl_controller->value(), options);
  EXPECT_TRUE(AllClose(targets.penalized_scores, out_.at("penalized_scores"), tol()));
  EXPECT_TRUE(AllClose(targets.rewards, out_.at("rewards"), tol()));
  EXPECT_TRUE(AllClose(targets.kl, out_.at("kl"), tol()));
  EXPECT_TRUE(AllClose(targets.advantages, out_.at("advantages"), tol()));
  EXPECT_TRUE(AllClose(targets.returns, out_.at("returns"), tol()));
  EXPECT_TRUE(AllClose(targets.advantages_whitened, out_.at("advantages_whitened"), tol()));
  EXPECT_TRUE(AllClose(targets.kl_obs, out_.at("kl_obs"), tol()));

  const torch::Tensor logprobs = Leaf(in_.at("logprobs"));
  const torch::Tensor values = Leaf(in_.at("values"));
  const PpoLossResult loss = ComputePpoLoss(logprobs, values, T(in_.at("old_logprobs")),
                                            batch.values, targets, batch.mask, options);
  loss.total.backward();
  EXPECT_TRUE(AllClose(loss.policy.loss, out_.at("policy_loss"), tol()));
  EXPECT_TRUE(AllClose(loss.value.loss, out_.at("value_loss"), tol()));
  EXPECT_TRUE(AllClose(loss.total, out_.at("total_loss"), tol()));
  EXPECT_TRUE(AllClose(logprobs.grad(), out_.at("grad_logprobs"), tol()));
  EXPECT_TRUE(AllClose(values.grad(), out_.at("grad_values"), tol()));

  kl_controller->Update(targets.kl_obs.item<double>(), batch.scores.size(0));
  EXPECT_NEAR(kl_controller->value(), out_.at("kl_coef_after_update").get<double>(), tol());
}

// The comparison can fail: GAE on the current values instead of the old ones changes the
// advantages, and a perturbed value changes the value loss gradient.
TEST_P(PpoStepGoldenTest, WrongValuesDoNotMatch) {
  const PpoStepOptions options = EndToEndOptions(in_);
  RolloutBatch batch = Batch();
  batch.values = T(in_.at("values"));
  const PpoTargets targets = ComputePpoTargets(batch, 0.05, options);
  EXPECT_GT(MaxAbsDiff(targets.advantages, out_.at("advantages")), 10 * tol());

  const PpoTargets good_targets = ComputePpoTargets(Batch(), 0.05, options);
  torch::Tensor values = T(in_.at("values"));
  values[0][0] += 1e5 * tol();  // 1e-4 in float64, 1 in float32.
  values.requires_grad_(true);
  const PpoLossResult loss =
      ComputePpoLoss(T(in_.at("logprobs")), values, T(in_.at("old_logprobs")),
                     T(in_.at("old_values")), good_targets, T(in_.at("mask")), options);
  loss.total.backward();
  EXPECT_GT(MaxAbsDiff(values.grad(), out_.at("grad_values")), 10 * tol());
}

TEST_P(PpoStepGoldenTest, TargetsAreDetached) {
  RolloutBatch batch = Batch();
  batch.logprobs.requires_grad_(true);
  batch.values.requires_grad_(true);
  const PpoTargets targets = ComputePpoTargets(batch, 0.05, EndToEndOptions(in_));
  EXPECT_FALSE(targets.advantages_whitened.requires_grad());
  EXPECT_FALSE(targets.returns.requires_grad());
}

RLHF_INSTANTIATE_DTYPE_TEST_SUITE(PpoStepGoldenTest);

// Two groups of two samples, by hand: penalized scores [1, 3, -1, 2] (row 2 misses EOS: -1),
// summed k1 KL [0.6, 0.4, 1.0, 0] at kl_coef 0.5, so sequence rewards [0.7, 2.8, -1.5, 2.0].
// The padding (logprobs 9 above the reference) must not count.
RolloutBatch HandGroupBatch() {
  const auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  RolloutBatch b;
  b.scores = torch::tensor({1.0, 3.0, 0.0, 2.0}, opts);
  b.contains_eos = torch::tensor({true, true, false, true});
  b.mask = torch::tensor({1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0}, opts)
               .view({4, 3});
  b.ref_logprobs = torch::full({4, 3}, -1.0, opts);
  const torch::Tensor diff =
      torch::tensor({0.2, 0.2, 0.2, 0.4, 0.0, 9.0, 1.0, 9.0, 9.0, 0.0, 0.0, 0.0}, opts)
          .view({4, 3});
  b.logprobs = b.ref_logprobs + diff;
  b.values = torch::full({4, 3}, 100.0, opts);  // not read
  return b;
}

PpoStepOptions HandGroupOptions() {
  PpoStepOptions o;
  o.eos_penalty = {MissingEosMode::kSubtract, 1.0};
  return o;
}

TEST(PpoStepTest, RlooAdvantagesAreLeaveOneOutOfSequenceRewards) {
  const RolloutBatch b = HandGroupBatch();
  GroupAdvantageOptions group;
  group.baseline = GroupBaseline::kLeaveOneOut;
  const PpoTargets t = ComputeGroupPpoTargets(b, 0.5, 2, group, HandGroupOptions());
  // R - the other sample's R, on every response token; 0 at padding; not whitened.
  const torch::Tensor expected =
      torch::tensor({-2.1, 2.1, -3.5, 3.5}, torch::kFloat64).unsqueeze(1) * b.mask;
  EXPECT_TRUE(torch::allclose(t.advantages, expected, 1e-12, 1e-12)) << t.advantages;
  EXPECT_TRUE(torch::equal(t.advantages_whitened, t.advantages));
  EXPECT_TRUE(
      torch::allclose(t.rewards.sum(1), torch::tensor({0.7, 2.8, -1.5, 2.0}, torch::kFloat64)));
  EXPECT_NEAR(t.kl_obs.item<double>(), 0.5, 1e-12);
  EXPECT_EQ(t.returns.abs().sum().item<double>(), 0.0);
  EXPECT_FALSE(t.advantages.requires_grad());
}

TEST(PpoStepTest, GrpoAdvantagesAreGroupStandardized) {
  const RolloutBatch b = HandGroupBatch();
  GroupAdvantageOptions group;
  group.baseline = GroupBaseline::kMeanStd;
  group.eps = 0;
  const PpoTargets t = ComputeGroupPpoTargets(b, 0.5, 2, group, HandGroupOptions());
  // Two samples: (R - mean) / unbiased std = -+1/sqrt(2), whatever the spread.
  const double a = 1.0 / std::sqrt(2.0);
  const torch::Tensor expected =
      torch::tensor({-a, a, -a, a}, torch::kFloat64).unsqueeze(1) * b.mask;
  EXPECT_TRUE(torch::allclose(t.advantages, expected, 1e-12, 1e-12)) << t.advantages;
}

TEST(PpoStepTest, GroupTargetsRejectRowsThatAreNotWholeGroups) {
  RolloutBatch b = HandGroupBatch();
  GroupAdvantageOptions group;
  EXPECT_THROW(ComputeGroupPpoTargets(b, 0.5, 3, group, HandGroupOptions()), c10::Error);
}

TEST(PpoStepTest, ValidateChecksEveryPart) {
  EXPECT_TRUE(Validate(PpoStepOptions{}).ok());
  PpoStepOptions options;
  options.gae.lambda = 2;
  EXPECT_EQ(Validate(options).code(), absl::StatusCode::kInvalidArgument);
  options = PpoStepOptions{};
  options.vf_coef = -1;
  EXPECT_EQ(Validate(options).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace rlhf::rl
