#include "common/model/named_parameters.h"

#include <gtest/gtest.h>

namespace rlhf::model {
namespace {

LlamaConfig TinyConfig() {
  LlamaConfig c;
  c.dim = 16;
  c.hidden_dim = 32;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.vocab_size = 20;
  c.max_seq_len = 16;
  return c;
}

using Named = std::vector<std::pair<std::string, torch::Tensor>>;

Named ParametersOf(const Llama& model) {
  Named out;
  for (const auto& p : model->named_parameters()) out.emplace_back(p.key(), p.value().clone());
  return out;
}

class LoadNamedParametersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto a = CreateRandomLlama(TinyConfig(), 1);
    auto b = CreateRandomLlama(TinyConfig(), 2);
    ASSERT_TRUE(a.ok() && b.ok());
    target_ = *a;
    source_ = *b;
    before_ = ParametersOf(target_);
  }
  // True when target_ still holds its original values.
  bool Unchanged() {
    for (const auto& [name, value] : before_) {
      if (!torch::equal(target_->named_parameters()[name], value)) return false;
    }
    return true;
  }

  Llama target_{nullptr}, source_{nullptr};
  Named before_;
};

TEST_F(LoadNamedParametersTest, CopiesEveryParameterInPlace) {
  const void* storage = target_->named_parameters()["norm.weight"].data_ptr();
  ASSERT_TRUE(LoadNamedParameters(target_, ParametersOf(source_)).ok());
  for (const auto& p : source_->named_parameters()) {
    EXPECT_TRUE(torch::equal(target_->named_parameters()[p.key()], p.value())) << p.key();
  }
  EXPECT_EQ(target_->named_parameters()["norm.weight"].data_ptr(), storage);
  EXPECT_TRUE(target_->named_parameters()["norm.weight"].requires_grad());
}

TEST_F(LoadNamedParametersTest, ConvertsOtherFloatingDtypes) {
  Named tensors = ParametersOf(source_);
  for (auto& [name, t] : tensors) t = t.to(torch::kBFloat16);
  ASSERT_TRUE(LoadNamedParameters(target_, tensors).ok());
  const auto loaded = target_->named_parameters()["layers.1.mlp.up_proj.weight"];
  EXPECT_EQ(loaded.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::equal(loaded, source_->named_parameters()["layers.1.mlp.up_proj.weight"]
                                       .to(torch::kBFloat16)
                                       .to(torch::kFloat32)));
}

TEST_F(LoadNamedParametersTest, RejectsBadInputWithoutTouchingTheModel) {
  struct Case {
    std::string what;
    std::function<void(Named&)> edit;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"unknown", [](Named& t) { t.emplace_back("lm_head.bias", torch::zeros({20})); },
       "unknown parameter 'lm_head.bias'"},
      {"missing", [](Named& t) { t.pop_back(); }, "missing parameter"},
      {"duplicate", [](Named& t) { t.push_back(t.front()); }, "given twice"},
      {"shape",
       [](Named& t) {
         t.back().second = torch::zeros({3, 3});
       },
       "has shape [3, 3]"},
      {"dtype", [](Named& t) { t.back().second = t.back().second.to(torch::kInt32); },
       "expected a floating-point dtype"},
      {"undefined", [](Named& t) { t.back().second = torch::Tensor(); }, "undefined tensor"},
  };
  for (const auto& c : cases) {
    Named tensors = ParametersOf(source_);
    c.edit(tensors);
    absl::Status s = LoadNamedParameters(target_, tensors);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.what << ": " << s;
    EXPECT_NE(s.message().find(c.message), std::string::npos) << c.what << ": " << s;
    EXPECT_TRUE(Unchanged()) << c.what;
  }
}

}  // namespace
}  // namespace rlhf::model
