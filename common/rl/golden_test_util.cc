#include "common/rl/golden_test_util.h"

#include <cmath>
#include <vector>

#include "common/testing/shared_data.h"

namespace rlhf::rl::testing {
namespace {

void Flatten(const nlohmann::json& value, size_t depth, std::vector<int64_t>* shape,
             std::vector<double>* out) {
  if (!value.is_array()) {
    out->push_back(value.is_boolean() ? (value.get<bool>() ? 1.0 : 0.0) : value.get<double>());
    return;
  }
  if (shape->size() == depth) shape->push_back(static_cast<int64_t>(value.size()));
  for (const nlohmann::json& element : value) Flatten(element, depth + 1, shape, out);
}

const nlohmann::json& GoldenFile() {
  static const nlohmann::json* const file =
      new nlohmann::json(rlhf::testing::LoadSharedJson("golden/ppo_math.json"));
  return *file;
}

}  // namespace

const nlohmann::json& PpoGolden() { return GoldenFile().at("cases"); }

torch::Tensor ToTensor(const nlohmann::json& value, torch::ScalarType dtype) {
  std::vector<int64_t> shape;
  std::vector<double> flat;
  Flatten(value, 0, &shape, &flat);
  return torch::tensor(flat, torch::kFloat64).reshape(shape).to(dtype);
}

double MaxAbsDiff(const torch::Tensor& actual, const nlohmann::json& expected) {
  const torch::Tensor want = ToTensor(expected, torch::kFloat64);
  return (actual.detach().to(torch::kFloat64).reshape(want.sizes()) - want)
      .abs()
      .max()
      .item<double>();
}

::testing::AssertionResult AllClose(const torch::Tensor& actual, const nlohmann::json& expected,
                                    double tolerance) {
  const torch::Tensor want = ToTensor(expected, torch::kFloat64);
  if (!actual.defined()) return ::testing::AssertionFailure() << "undefined tensor";
  if (actual.sizes() != want.sizes()) {
    return ::testing::AssertionFailure()
           << "shape " << actual.sizes() << ", expected " << want.sizes();
  }
  const torch::Tensor diff = (actual.detach().to(torch::kFloat64) - want).abs();
  const double worst = diff.max().item<double>();
  if (std::isfinite(worst) && worst <= tolerance) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "max |diff| " << worst << " > " << tolerance << " at flat index "
         << diff.flatten().argmax().item<int64_t>() << "\nactual:\n"
         << actual.detach().to(torch::kFloat64) << "\nexpected:\n"
         << want;
}

double GoldenTolerance(torch::ScalarType dtype) {
  return GoldenFile()
      .at(dtype == torch::kFloat64 ? "tolerance_abs" : "tolerance_abs_float32")
      .get<double>();
}

std::string DtypeName(const ::testing::TestParamInfo<torch::ScalarType>& info) {
  return info.param == torch::kFloat64 ? "Float64" : "Float32";
}

}  // namespace rlhf::rl::testing
