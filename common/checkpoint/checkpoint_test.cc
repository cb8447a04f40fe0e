#include "common/checkpoint/checkpoint.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/checkpoint/test_util.h"
#include "common/testing/shared_data.h"
#include "common/model/llama.h"

namespace rlhf::checkpoint {
namespace {

using ::rlhf::checkpoint::testing::MaxAbsDiff;
using ::rlhf::checkpoint::testing::ModelPath;
using ::rlhf::checkpoint::testing::ReadFileOrDie;
using ::rlhf::checkpoint::testing::TempDir;
using ::rlhf::checkpoint::testing::WriteFileOrDie;
using ::testing::HasSubstr;

// Float32 tolerance of shared/golden/README.md section 1.
constexpr double kLogitTolerance = 2e-4;

torch::Tensor Logits(model::Llama& m, const std::vector<int64_t>& tokens) {
  torch::NoGradGuard no_grad;
  return m->forward(torch::tensor(tokens).unsqueeze(0)).squeeze(0);
}

// The three copies of stories260K (llama2.c .bin, HF with a tied lm_head copy, HF without it)
// load through LoadModel and agree with each other and with the float64 golden logits.
TEST(LoadModelTest, StoriesCopiesGiveSameLogits) {
  const nlohmann::json golden =
      nlohmann::json::parse(ReadFileOrDie(::rlhf::testing::SharedPath("golden/model_stories260K.json")));
  ASSERT_FALSE(golden["cases"].empty());
  // Every position's logits of every golden case, per copy: the copies must agree everywhere,
  // not only where the golden file has values.
  std::vector<std::vector<torch::Tensor>> all_logits;
  for (const std::string name :
       {"stories260K.bin", "stories260K-hf", "stories260K-hf-no-lm-head"}) {
    SCOPED_TRACE(name);
    absl::StatusOr<model::Llama> m = LoadModel(ModelPath(name));
    ASSERT_TRUE(m.ok()) << m.status();
    all_logits.emplace_back();
    for (const nlohmann::json& c : golden["cases"]) {
      const auto tokens = c["tokens"].get<std::vector<int64_t>>();
      SCOPED_TRACE(tokens.size());
      const torch::Tensor logits = Logits(*m, tokens);
      const auto want_last = c["logits_last"].get<std::vector<double>>();
      const auto want_first = c["logits_pos0"].get<std::vector<double>>();
      EXPECT_LE(MaxAbsDiff(logits[-1], torch::tensor(want_last)), kLogitTolerance);
      EXPECT_LE(MaxAbsDiff(logits[0], torch::tensor(want_first)), kLogitTolerance);
      all_logits.back().push_back(logits);
    }
  }
  ASSERT_EQ(all_logits.size(), 3u);
  for (size_t copy = 1; copy < all_logits.size(); ++copy) {
    for (size_t c = 0; c < all_logits[0].size(); ++c) {
      EXPECT_LE(MaxAbsDiff(all_logits[0][c], all_logits[copy][c]), kLogitTolerance)
          << "copy " << copy << ", case " << c;
    }
  }
}

TEST(LoadModelTest, UnknownPathKind) {
  TempDir dir;
  const std::string path = dir.Join("model.pt");
  WriteFileOrDie(path, "not a checkpoint");
  absl::StatusOr<model::Llama> m = LoadModel(path);
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << m.status();
  EXPECT_THAT(m.status().message(), HasSubstr("cannot tell what kind of checkpoint"));
  EXPECT_THAT(m.status().message(), HasSubstr(path));
}

TEST(LoadModelTest, MissingPathIsNotFound) {
  TempDir dir;
  absl::StatusOr<model::Llama> m = LoadModel(dir.Join("missing.bin"));
  EXPECT_EQ(m.status().code(), absl::StatusCode::kNotFound) << m.status();
  EXPECT_THAT(m.status().message(), HasSubstr("missing.bin"));
}

TEST(LoadModelTest, DirectoryErrorsComeFromTheHfLoader) {
  TempDir dir;
  absl::StatusOr<model::Llama> m = LoadModel(dir.path());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kNotFound) << m.status();
  EXPECT_THAT(m.status().message(), HasSubstr("config.json"));
}

}  // namespace
}  // namespace rlhf::checkpoint
