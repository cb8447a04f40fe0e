// Checks the Llama implementation against ../shared/golden/model_stories260K.json: logits,
// per-token log-probs and greedy continuations, from the llama2.c .bin and both HF directories,
// alone and batched with prompts of other lengths, through both the autograd path (Trunk /
// scoring) and the KV-cache generation engine.
#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/checkpoint/checkpoint.h"
#include "common/model/generation.h"
#include "common/model/llama.h"
#include "common/model/scoring.h"
#include "common/testing/shared_data.h"

namespace rlhf {
namespace {

using nlohmann::json;

constexpr double kTol = 2e-4;  // golden README: float32 logits and log-probs

std::vector<int64_t> Ids(const json& j) { return j.get<std::vector<int64_t>>(); }

double MaxAbsDiff(const torch::Tensor& a, const std::vector<double>& b) {
  auto bt = torch::tensor(b, torch::kFloat64);
  return (a.to(torch::kFloat64).flatten() - bt).abs().max().item<double>();
}

double MaxAbsDiff(const std::vector<float>& a, const json& b) {
  auto v = b.get<std::vector<double>>();
  EXPECT_EQ(a.size(), v.size());
  double m = 0;
  for (size_t i = 0; i < std::min(a.size(), v.size()); ++i) m = std::max(m, std::abs(a[i] - v[i]));
  return m;
}

class ModelGoldenTest : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    golden_ = new json(testing::LoadSharedJson("golden/model_stories260K.json"));
  }
  void SetUp() override {
    auto model = checkpoint::LoadModel(testing::SharedPath(GetParam()));
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = *model;
    model_->eval();
  }
  static json* golden_;
  model::Llama model_{nullptr};
};
json* ModelGoldenTest::golden_ = nullptr;

TEST_P(ModelGoldenTest, LogitsMatchAtFirstAndLastPosition) {
  torch::NoGradGuard no_grad;
  for (const auto& c : (*golden_)["cases"]) {
    auto tokens = torch::tensor(Ids(c["tokens"]), torch::kLong).unsqueeze(0);
    auto logits = model_->forward(tokens)[0];
    const int64_t t = tokens.size(1);
    EXPECT_LE(MaxAbsDiff(logits[0], c["logits_pos0"].get<std::vector<double>>()), kTol)
        << c["name"];
    EXPECT_LE(MaxAbsDiff(logits[t - 1], c["logits_last"].get<std::vector<double>>()), kTol)
        << c["name"];
    auto argmax = logits.argmax(-1);
    EXPECT_EQ(std::vector<int64_t>(argmax.data_ptr<int64_t>(), argmax.data_ptr<int64_t>() + t),
              Ids(c["argmax_per_position"]))
        << c["name"];
  }
}

TEST_P(ModelGoldenTest, TokenLogProbsMatchAloneAndBatched) {
  std::vector<std::vector<int64_t>> all;
  for (const auto& c : (*golden_)["cases"]) all.push_back(Ids(c["tokens"]));
  auto batched = model::ScoreTokenLogProbs(model_, all);
  ASSERT_TRUE(batched.ok()) << batched.status();
  const double temp = (*golden_)["cases"][0]["temperature"].get<double>();
  auto tempered = model::ScoreTokenLogProbs(model_, all, temp);
  ASSERT_TRUE(tempered.ok()) << tempered.status();
  for (size_t i = 0; i < all.size(); ++i) {
    const auto& c = (*golden_)["cases"][i];
    auto alone = model::ScoreTokenLogProbs(model_, {all[i]});
    ASSERT_TRUE(alone.ok());
    EXPECT_LE(MaxAbsDiff((*alone)[0], c["token_logprobs"]), kTol) << c["name"];
    EXPECT_LE(MaxAbsDiff((*batched)[i], c["token_logprobs"]), kTol) << c["name"];
    EXPECT_LE(MaxAbsDiff((*tempered)[i], c["token_logprobs_at_temperature"]), kTol) << c["name"];
  }
}

TEST_P(ModelGoldenTest, GreedyContinuationsMatchWithKvCache) {
  model::SamplingOptions opts;
  opts.temperature = 0;
  opts.stop_at_eos = false;
  auto engine = model::GenerationEngine::Create(model_);
  ASSERT_TRUE(engine.ok()) << engine.status();
  for (const auto& c : (*golden_)["cases"]) {
    opts.max_new_tokens = c["greedy"]["n_new_tokens"].get<int64_t>();
    auto out = (*engine)->Generate({Ids(c["tokens"])}, opts);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ((*out)[0].tokens, Ids(c["greedy"]["tokens"])) << c["name"];
    EXPECT_LE(MaxAbsDiff((*out)[0].logprobs, c["greedy"]["logprobs"]), kTol) << c["name"];
    EXPECT_EQ((*out)[0].finish_reason, model::FinishReason::kLength);
  }
}

// The golden batch: three prompts of different lengths, checked per prompt against results
// computed alone, in both padding layouts and through the generation engine.
TEST_P(ModelGoldenTest, BatchedPaddedLayoutsMatchSinglePromptResults) {
  torch::NoGradGuard no_grad;
  const json& batch = (*golden_)["batch"];
  for (const char* layout : {"right_padded", "left_padded"}) {
    std::vector<torch::Tensor> rows, masks;
    for (const auto& r : batch[layout]["tokens"]) rows.push_back(torch::tensor(Ids(r)));
    for (const auto& r : batch[layout]["attention_mask"]) masks.push_back(torch::tensor(Ids(r)));
    auto logits = model_->forward(torch::stack(rows), torch::stack(masks));
    for (size_t i = 0; i < batch["cases"].size(); ++i) {
      const auto& c = batch["cases"][i];
      const int64_t len = c["length"].get<int64_t>(), width = rows[i].size(0);
      const int64_t first = std::string(layout) == "left_padded" ? width - len : 0;
      EXPECT_LE(MaxAbsDiff(logits[i][first], c["logits_pos0"].get<std::vector<double>>()), kTol)
          << layout << " prompt " << i;
      EXPECT_LE(MaxAbsDiff(logits[i][first + len - 1],
                           c["logits_last"].get<std::vector<double>>()),
                kTol)
          << layout << " prompt " << i;
    }
  }
  std::vector<std::vector<int64_t>> prompts;
  for (const auto& p : batch["prompts"]) prompts.push_back(Ids(p));
  model::SamplingOptions opts;
  opts.temperature = 0;
  opts.stop_at_eos = false;
  opts.max_new_tokens = batch["cases"][0]["greedy"]["n_new_tokens"].get<int64_t>();
  auto engine = model::GenerationEngine::Create(model_);
  ASSERT_TRUE(engine.ok());
  auto out = (*engine)->Generate(prompts, opts);
  ASSERT_TRUE(out.ok()) << out.status();
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto& g = batch["cases"][i]["greedy"];
    EXPECT_EQ((*out)[i].tokens, Ids(g["tokens"])) << "prompt " << i;
    EXPECT_LE(MaxAbsDiff((*out)[i].logprobs, g["logprobs"]), kTol) << "prompt " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(AllFormats, ModelGoldenTest,
                         ::testing::Values("models/stories260K.bin", "models/stories260K-hf",
                                           "models/stories260K-hf-no-lm-head"),
                         [](const auto& info) {
                           std::string n = info.param.substr(info.param.find('/') + 1);
                           for (char& ch : n) {
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return n;
                         });

TEST(ModelGoldenFloat64Test, LogitsMatchToOneE8) {
  auto model = checkpoint::LoadModel(testing::SharedPath("models/stories260K.bin"));
  ASSERT_TRUE(model.ok()) << model.status();
  (*model)->to(torch::kFloat64);
  torch::NoGradGuard no_grad;
  const json golden = testing::LoadSharedJson("golden/model_stories260K.json");
  for (const auto& c : golden["cases"]) {
    auto tokens = torch::tensor(Ids(c["tokens"]), torch::kLong).unsqueeze(0);
    auto logits = (*model)->forward(tokens)[0];
    EXPECT_LE(MaxAbsDiff(logits[0], c["logits_pos0"].get<std::vector<double>>()), 1e-8);
    EXPECT_LE(MaxAbsDiff(logits[tokens.size(1) - 1], c["logits_last"].get<std::vector<double>>()),
              1e-8);
  }
}

}  // namespace
}  // namespace rlhf
