#include "common/rl/stats.h"

#include <gtest/gtest.h>

#include "common/rl/golden_test_util.h"

namespace rlhf::rl {
namespace {

using ::rlhf::rl::testing::AllClose;
using ::rlhf::rl::testing::MaxAbsDiff;
using ::rlhf::rl::testing::PpoGolden;

class StatsGoldenTest : public testing::DtypeTest {
 protected:
  const nlohmann::json& in_ = PpoGolden().at("masked_stats").at("inputs");
  const nlohmann::json& out_ = PpoGolden().at("masked_stats").at("outputs");
  torch::Tensor x_ = T(in_.at("x"));
  torch::Tensor mask_ = T(in_.at("mask"));
};

TEST_P(StatsGoldenTest, MaskedMean) {
  const torch::Tensor mean = MaskedMean(x_, mask_);
  EXPECT_EQ(mean.dim(), 0);
  EXPECT_EQ(mean.scalar_type(), dtype());
  EXPECT_TRUE(AllClose(mean, out_.at("masked_mean"), tol()));
  EXPECT_TRUE(AllClose(MaskedMean(x_, mask_, /*dim=*/-1), out_.at("masked_mean_dim_last"), tol()));
}

TEST_P(StatsGoldenTest, MaskedVar) {
  EXPECT_TRUE(AllClose(MaskedVar(x_, mask_), out_.at("masked_var_unbiased"), tol()));
  EXPECT_TRUE(
      AllClose(MaskedVar(x_, mask_, /*unbiased=*/false), out_.at("masked_var_biased"), tol()));
}

TEST_P(StatsGoldenTest, Whiten) {
  EXPECT_TRUE(AllClose(Whiten(x_, mask_), out_.at("whiten_shift_mean"), tol()));
  WhitenOptions keep_mean;
  keep_mean.shift_mean = false;
  EXPECT_TRUE(AllClose(Whiten(x_, mask_, keep_mean), out_.at("whiten_keep_mean"), tol()));
}

TEST_P(StatsGoldenTest, LastValidIndex) {
  const torch::Tensor last = LastValidIndex(mask_);
  EXPECT_EQ(last.scalar_type(), torch::kLong);
  EXPECT_TRUE(AllClose(last, out_.at("last_valid_index"), 0.0));
}

TEST_P(StatsGoldenTest, BoolMaskGivesTheSameResults) {
  const torch::Tensor bool_mask = mask_.to(torch::kBool);
  EXPECT_TRUE(AllClose(MaskedMean(x_, bool_mask), out_.at("masked_mean"), tol()));
  EXPECT_TRUE(AllClose(Whiten(x_, bool_mask), out_.at("whiten_shift_mean"), tol()));
  EXPECT_TRUE(AllClose(LastValidIndex(bool_mask), out_.at("last_valid_index"), 0.0));
}

TEST_P(StatsGoldenTest, PaddedValuesDoNotMatter) {
  const torch::Tensor garbage = torch::where(mask_ > 0, x_, torch::full_like(x_, 1e3));
  EXPECT_TRUE(AllClose(MaskedMean(garbage, mask_), out_.at("masked_mean"), tol()));
  EXPECT_TRUE(AllClose(Whiten(garbage, mask_), out_.at("whiten_shift_mean"), tol()));
}

// The comparison can fail: a perturbed real value, or a mask that also counts one pad, moves
// every statistic by far more than the tolerance.
TEST_P(StatsGoldenTest, PerturbedInputDoesNotMatch) {
  // Where to perturb comes from the fixture: its first real value, and the last column of a row
  // that ends in padding.
  const torch::Tensor real = mask_.nonzero();
  ASSERT_GT(real.size(0), 0) << "the fixture's mask has no real value";
  const torch::Tensor padded_rows = (mask_.select(1, -1) == 0).nonzero();
  ASSERT_GT(padded_rows.size(0), 0) << "the fixture has no row that ends in padding";
  torch::Tensor perturbed = x_.clone();
  perturbed[real[0][0].item<int64_t>()][real[0][1].item<int64_t>()] +=
      1e5 * tol();  // 1e-4 in float64, 1 in float32.
  EXPECT_GT(MaxAbsDiff(MaskedMean(perturbed, mask_), out_.at("masked_mean")), 10 * tol());
  EXPECT_GT(MaxAbsDiff(Whiten(perturbed, mask_), out_.at("whiten_shift_mean")), 10 * tol());
  torch::Tensor wider_mask = mask_.clone();
  wider_mask[padded_rows[0][0].item<int64_t>()][mask_.size(1) - 1] = 1;
  EXPECT_GT(MaxAbsDiff(MaskedVar(x_, wider_mask), out_.at("masked_var_unbiased")), 10 * tol());
  EXPECT_FALSE(AllClose(LastValidIndex(wider_mask), out_.at("last_valid_index"), 0.0));
}

RLHF_INSTANTIATE_DTYPE_TEST_SUITE(StatsGoldenTest);

TEST(StatsTest, ShapeMismatchIsAProgrammerError) {
  EXPECT_THROW(MaskedMean(torch::ones({2, 3}), torch::ones({2, 4})), c10::Error);
  EXPECT_THROW(LastValidIndex(torch::ones({3})), c10::Error);
}

TEST(StatsTest, GradientFlowsToValuesOnly) {
  torch::Tensor x = torch::tensor({{1.0, 2.0, 3.0}, {4.0, 5.0, 6.0}}, torch::kFloat64);
  x.requires_grad_(true);
  const torch::Tensor mask = torch::tensor({{1.0, 1.0, 0.0}, {1.0, 0.0, 0.0}}, torch::kFloat64);
  MaskedMean(x, mask).backward();
  // d mean / d x = mask / sum(mask) = mask / 3.
  EXPECT_TRUE(torch::allclose(x.grad(), mask / 3));
}

}  // namespace
}  // namespace rlhf::rl
