#include "common/rl/preference.h"

#include <gtest/gtest.h>

#include <vector>

#include "common/rl/golden_test_util.h"

namespace rlhf::rl {
namespace {

using ::rlhf::rl::testing::AllClose;
using ::rlhf::rl::testing::MaxAbsDiff;
using ::rlhf::rl::testing::PpoGolden;
using Json = nlohmann::json;

class PreferenceGoldenTest : public testing::DtypeTest {
 protected:
  const Json& golden_ = PpoGolden().at("preference");
};

TEST_P(PreferenceGoldenTest, BradleyTerryLoss) {
  const Json& c = golden_.at("bt_loss");
  const torch::Tensor chosen = Leaf(c.at("r_chosen"));
  const torch::Tensor rejected = Leaf(c.at("r_rejected"));
  const torch::Tensor loss = BradleyTerryLoss(chosen, rejected);
  loss.backward();
  EXPECT_TRUE(AllClose(loss, c.at("loss"), tol()));
  EXPECT_TRUE(AllClose(chosen.grad(), c.at("grad_r_chosen"), tol()));
  EXPECT_TRUE(AllClose(rejected.grad(), c.at("grad_r_rejected"), tol()));
  // Can fail: swapped preferences.
  EXPECT_GT(MaxAbsDiff(BradleyTerryLoss(T(c.at("r_rejected")), T(c.at("r_chosen"))), c.at("loss")),
            10 * tol());
}

TEST_P(PreferenceGoldenTest, BradleyTerryLossWithMargin) {
  const Json& c = golden_.at("bt_loss_margin");
  const torch::Tensor chosen = Leaf(c.at("r_chosen"));
  const torch::Tensor rejected = Leaf(c.at("r_rejected"));
  const torch::Tensor loss = BradleyTerryLoss(chosen, rejected, T(c.at("margin")));
  loss.backward();
  EXPECT_TRUE(AllClose(loss, c.at("loss"), tol()));
  EXPECT_TRUE(AllClose(chosen.grad(), c.at("grad_r_chosen"), tol()));
  EXPECT_TRUE(AllClose(rejected.grad(), c.at("grad_r_rejected"), tol()));
  EXPECT_GT(MaxAbsDiff(BradleyTerryLoss(T(c.at("r_chosen")), T(c.at("r_rejected"))), c.at("loss")),
            10 * tol());
}

TEST_P(PreferenceGoldenTest, SoftBradleyTerryLoss) {
  const Json& c = golden_.at("bt_soft_loss");
  const torch::Tensor r_a = Leaf(c.at("r_a"));
  const torch::Tensor r_b = Leaf(c.at("r_b"));
  const torch::Tensor loss = SoftBradleyTerryLoss(r_a, r_b, T(c.at("p_a")));
  loss.backward();
  EXPECT_TRUE(AllClose(loss, c.at("loss"), tol()));
  EXPECT_TRUE(AllClose(r_a.grad(), c.at("grad_r_a"), tol()));
  EXPECT_TRUE(AllClose(r_b.grad(), c.at("grad_r_b"), tol()));
  EXPECT_GT(MaxAbsDiff(SoftBradleyTerryLoss(T(c.at("r_a")), T(c.at("r_b")), 1 - T(c.at("p_a"))),
                       c.at("loss")),
            10 * tol());
}

TEST_P(PreferenceGoldenTest, KChoose2Loss) {
  const Json& c = golden_.at("k_choose_2_loss");
  std::vector<torch::Tensor> rewards;
  for (const Json& prompt : c.at("rewards_ranked")) rewards.push_back(Leaf(prompt));
  ASSERT_EQ(rewards.size(), 3u);
  const torch::Tensor loss = KChoose2Loss(rewards);
  loss.backward();
  EXPECT_TRUE(AllClose(loss, c.at("loss"), tol()));
  for (size_t p = 0; p < rewards.size(); ++p) {
    EXPECT_TRUE(AllClose(rewards[p].grad(), c.at("grads")[p], tol())) << "prompt " << p;
  }
  // Can fail: the ranking reversed within the first prompt.
  std::vector<torch::Tensor> reversed;
  for (const Json& prompt : c.at("rewards_ranked")) reversed.push_back(T(prompt));
  reversed[0] = reversed[0].flip(0);
  EXPECT_GT(MaxAbsDiff(KChoose2Loss(reversed), c.at("loss")), 10 * tol());
}

TEST_P(PreferenceGoldenTest, PairwiseAccuracy) {
  const Json& c = golden_.at("pairwise_accuracy");
  const torch::Tensor accuracy = PairwiseAccuracy(T(c.at("r_chosen")), T(c.at("r_rejected")));
  EXPECT_EQ(accuracy.scalar_type(), dtype());
  EXPECT_TRUE(AllClose(accuracy, c.at("accuracy"), tol()));
  EXPECT_FALSE(AllClose(PairwiseAccuracy(T(c.at("r_rejected")), T(c.at("r_chosen"))),
                        c.at("accuracy"), tol()));
}

TEST_P(PreferenceGoldenTest, CaiOptionLogprob) {
  const Json& c = PpoGolden().at("cai").at("option_logprob");
  const torch::Tensor token_logprobs = T(c.at("token_logprobs"));
  EXPECT_TRUE(AllClose(OptionLogprob(token_logprobs, T(c.at("token_mask"))),
                       c.at("option_logprobs"), tol()));
  EXPECT_GT(MaxAbsDiff(OptionLogprob(token_logprobs, torch::ones_like(token_logprobs)),
                       c.at("option_logprobs")),
            10 * tol());
}

TEST_P(PreferenceGoldenTest, CaiSoftLabels) {
  const Json& c = PpoGolden().at("cai").at("soft_labels");
  SoftLabelOptions clamp;
  clamp.clamp = ClipRange{0.4, 0.6};
  ASSERT_TRUE(Validate(clamp).ok());
  const torch::Tensor option_logprobs = T(c.at("option_logprobs"));
  EXPECT_TRUE(AllClose(SoftPreferenceLabels(option_logprobs), c.at("no_clamp"), tol()));
  EXPECT_TRUE(AllClose(SoftPreferenceLabels(option_logprobs, clamp), c.at("clamp_0.4_0.6"), tol()));
  EXPECT_TRUE(AllClose(SoftPreferenceLabels(T(c.at("extreme_input")), clamp),
                       c.at("extreme_clamp_0.4_0.6"), tol()));
  EXPECT_FALSE(AllClose(SoftPreferenceLabels(option_logprobs.flip(1)), c.at("no_clamp"), tol()));
}

TEST_P(PreferenceGoldenTest, CaiMultiSampleAveragesBeforeClamping) {
  const Json& c = PpoGolden().at("cai").at("multi_sample");
  const torch::Tensor per_sample = T(c.at("option_logprobs_per_sample"));
  ASSERT_EQ(per_sample.dim(), 3);
  SoftLabelOptions clamp;
  clamp.clamp = ClipRange{0.4, 0.6};
  EXPECT_TRUE(AllClose(SoftPreferenceLabels(per_sample), c.at("no_clamp"), tol()));
  EXPECT_TRUE(AllClose(SoftPreferenceLabels(per_sample, clamp), c.at("clamp_0.4_0.6"), tol()));
  // Can fail: averaging log-probs (instead of probabilities) before the softmax differs.
  EXPECT_GT(MaxAbsDiff(SoftPreferenceLabels(per_sample.mean(0)), c.at("no_clamp")), 10 * tol());
  // Can fail: clamping each sample before averaging differs.
  std::vector<torch::Tensor> clamped_each;
  for (int64_t s = 0; s < per_sample.size(0); ++s) {
    clamped_each.push_back(SoftPreferenceLabels(per_sample[s], clamp));
  }
  EXPECT_GT(MaxAbsDiff(torch::stack(clamped_each).mean(0), c.at("clamp_0.4_0.6")), 10 * tol());
}

RLHF_INSTANTIATE_DTYPE_TEST_SUITE(PreferenceGoldenTest);

TEST(PreferenceTest, ValidateAndShapeChecks) {
  SoftLabelOptions bad;
  bad.clamp = ClipRange{0.7, 0.3};
  EXPECT_EQ(Validate(bad).code(), absl::StatusCode::kInvalidArgument);
  SoftLabelOptions clamp;
  clamp.clamp = ClipRange{0.4, 0.6};
  EXPECT_THROW(SoftPreferenceLabels(torch::zeros({2, 3}), clamp), c10::Error);
  EXPECT_THROW(KChoose2Loss({torch::zeros({1})}), c10::Error);
  EXPECT_THROW(BradleyTerryLoss(torch::zeros({2}), torch::zeros({3})), c10::Error);
}

}  // namespace
}  // namespace rlhf::rl
