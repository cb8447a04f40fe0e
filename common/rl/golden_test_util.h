// Test-only helpers for the common/rl golden tests: shared/golden/ppo_math.json as tensors, a
// closeness assertion, and a gtest fixture parameterized over float64 / float32. Not thread-safe.
#ifndef RLHF_COMMON_RL_GOLDEN_TEST_UTIL_H_
#define RLHF_COMMON_RL_GOLDEN_TEST_UTIL_H_

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>

namespace rlhf::rl::testing {

// The "cases" object of shared/golden/ppo_math.json, parsed once per process.
const nlohmann::json& PpoGolden();

// A tensor from a number or a (nested, rectangular) list of numbers or booleans.
torch::Tensor ToTensor(const nlohmann::json& value, torch::ScalarType dtype);

// Max |actual - expected| (computed in float64). REQUIRES: same number of elements.
double MaxAbsDiff(const torch::Tensor& actual, const nlohmann::json& expected);

// Success iff `actual` has the shape of `expected` and every element is within `tolerance`.
::testing::AssertionResult AllClose(const torch::Tensor& actual, const nlohmann::json& expected,
                                    double tolerance);

// The golden's tolerance for a dtype: 1e-9 for float64, 1e-5 for float32.
double GoldenTolerance(torch::ScalarType dtype);

// Fixture for tests that run in both float64 and float32.
class DtypeTest : public ::testing::TestWithParam<torch::ScalarType> {
 protected:
  torch::ScalarType dtype() const { return GetParam(); }
  double tol() const { return GoldenTolerance(GetParam()); }
  // ToTensor in the test's dtype.
  torch::Tensor T(const nlohmann::json& value) const { return ToTensor(value, GetParam()); }
  // ToTensor in the test's dtype, with requires_grad set (a leaf).
  torch::Tensor Leaf(const nlohmann::json& value) const {
    return ToTensor(value, GetParam()).requires_grad_(true);
  }
};

// Test-name suffix for DtypeTest instantiations ("Float64", "Float32").
std::string DtypeName(const ::testing::TestParamInfo<torch::ScalarType>& info);

}  // namespace rlhf::rl::testing

// Instantiates a DtypeTest-derived suite for float64 and float32.
#define RLHF_INSTANTIATE_DTYPE_TEST_SUITE(suite)                                               \
  INSTANTIATE_TEST_SUITE_P(Dtypes, suite, ::testing::Values(torch::kFloat64, torch::kFloat32), \
                           ::rlhf::rl::testing::DtypeName)

#endif  // RLHF_COMMON_RL_GOLDEN_TEST_UTIL_H_
