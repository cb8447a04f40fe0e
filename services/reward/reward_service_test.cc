// Starts the real reward service on 127.0.0.1:0 (rule and model backends) and calls it over TCP.
#include "services/reward/reward_service.h"

#include <cstdlib>
#include <filesystem>
#include <thread>

#include <c10/util/Exception.h>
#include <gtest/gtest.h>

#include "common/checkpoint/hf.h"
#include "common/grpc/server.h"
#include "common/model/scoring.h"

namespace rlhf::reward {
namespace {

using rlhf::v1::RewardRule;

RewardRule Rule(RewardRule::Kind kind, double weight, const std::string& word = "",
                const std::string& pattern = "", int target = 0) {
  RewardRule r;
  r.set_kind(kind);
  r.set_weight(weight);
  if (!word.empty()) r.set_word(word);
  if (!pattern.empty()) r.set_pattern(pattern);
  if (target > 0) r.set_target_length(target);
  return r;
}

class RewardServiceTest : public ::testing::Test {
 protected:
  void Serve(std::unique_ptr<Scorer> scorer) {
    RewardServiceOptions opts;
    opts.max_request_items = 4;
    auto service = RewardService::Create(std::move(scorer), opts);
    ASSERT_TRUE(service.ok()) << service.status();
    service_ = std::move(*service);
    auto server = grpc_util::Server::Start({}, {service_.get()}, {"rlhf.v1.Reward"});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    auto channel = grpc_util::CreateChannel(server_->address());
    ASSERT_TRUE(
        grpc_util::WaitForServing(channel, "rlhf.v1.Reward", absl::Now() + absl::Seconds(10)).ok());
    stub_ = rlhf::v1::Reward::NewStub(channel);
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
  }
  ::grpc::Status Call(const rlhf::v1::ScoreRequest& req, rlhf::v1::ScoreResponse* resp) {
    ::grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return stub_->Score(&ctx, req, resp);
  }
  static void AddText(rlhf::v1::ScoreRequest* req, const std::string& response) {
    req->add_items()->set_response_text(response);
  }

  std::unique_ptr<RewardService> service_;
  std::unique_ptr<grpc_util::Server> server_;
  std::unique_ptr<rlhf::v1::Reward::Stub> stub_;
};

TEST_F(RewardServiceTest, RulesScoreResponses) {
  auto scorer = CreateRuleScorer({Rule(RewardRule::WORD_RATE, 1.0, "cat"),
                                  Rule(RewardRule::REGEX_MATCH, 0.5, "", "^Yes[,.]"),
                                  Rule(RewardRule::LENGTH, 0.25, "", "", 20),
                                  Rule(RewardRule::CONTAINS, -2.0, "bad")});
  ASSERT_TRUE(scorer.ok()) << scorer.status();
  Serve(std::move(*scorer));
  rlhf::v1::ScoreRequest req;
  AddText(&req, "cat dog cat bird");            // 0.5 + 0 + 0.25*16/20
  AddText(&req, "Yes, a cat");                  // 1/3 + 0.5 + 0.25*10/20
  AddText(&req, "bad bad bad bad bad bad bad");  // 0 + 0 + 0.25*1 - 2
  rlhf::v1::ScoreResponse resp;
  ASSERT_TRUE(Call(req, &resp).ok());
  ASSERT_EQ(resp.scores_size(), 3);
  EXPECT_NEAR(resp.scores(0), 0.5 + 0.25 * 16 / 20, 1e-6);
  EXPECT_NEAR(resp.scores(1), 1.0 / 3 + 0.5 + 0.25 * 10 / 20, 1e-6);
  EXPECT_NEAR(resp.scores(2), 0.25 - 2.0, 1e-6);
}

TEST_F(RewardServiceTest, TextShareIsTheShareOfBytesInOccurrencesOfTheWord) {
  auto scorer = CreateRuleScorer({Rule(RewardRule::TEXT_SHARE, 2.0, "ver")});
  ASSERT_TRUE(scorer.ok()) << scorer.status();
  Serve(std::move(*scorer));
  rlhf::v1::ScoreRequest req;
  AddText(&req, "xververx");  // 2 occurrences * 3 bytes / 8 bytes
  AddText(&req, "vvvv");
  AddText(&req, "ver");
  rlhf::v1::ScoreResponse resp;
  ASSERT_TRUE(Call(req, &resp).ok());
  ASSERT_EQ(resp.scores_size(), 3);
  EXPECT_NEAR(resp.scores(0), 2.0 * 6 / 8, 1e-6);
  EXPECT_NEAR(resp.scores(1), 0.0, 1e-6);
  EXPECT_NEAR(resp.scores(2), 2.0, 1e-6);
}

TEST_F(RewardServiceTest, CatastrophicPatternAnswersAndTheServiceGoesOn) {
  // (a+)+b on a run of a's with no b: a backtracking engine tries 2^n ways (std::regex never
  // answered); RE2 answers in time linear in the text.
  auto scorer = CreateRuleScorer({Rule(RewardRule::REGEX_MATCH, 1.0, "", "(a+)+b")});
  ASSERT_TRUE(scorer.ok()) << scorer.status();
  Serve(std::move(*scorer));
  rlhf::v1::ScoreRequest req;
  AddText(&req, std::string(100000, 'a'));
  AddText(&req, std::string(1000, 'a') + "b");
  rlhf::v1::ScoreResponse resp;
  ASSERT_TRUE(Call(req, &resp).ok());
  ASSERT_EQ(resp.scores_size(), 2);
  EXPECT_EQ(resp.scores(0), 0.0f);
  EXPECT_EQ(resp.scores(1), 1.0f);
  rlhf::v1::ScoreRequest next;
  AddText(&next, "aab");
  rlhf::v1::ScoreResponse next_resp;
  ASSERT_TRUE(Call(next, &next_resp).ok());
  ASSERT_EQ(next_resp.scores_size(), 1);
  EXPECT_EQ(next_resp.scores(0), 1.0f);
}

// A real rule scorer whose batch throws LibTorch's error when a response says "refuse", as a
// model does on an input it cannot take (a shape it refuses, out of memory).
class ThrowingScorer final : public Scorer {
 public:
  explicit ThrowingScorer(std::unique_ptr<Scorer> inner) : inner_(std::move(inner)) {}
  absl::StatusOr<std::vector<float>> Score(const std::vector<ScoreInput>& inputs) override {
    for (const auto& in : inputs) TORCH_CHECK(in.response_text != "refuse", "model refused");
    return inner_->Score(inputs);
  }
  absl::Status Check(const ScoreInput& input) const override { return inner_->Check(input); }

 private:
  std::unique_ptr<Scorer> inner_;
};

TEST_F(RewardServiceTest, ABatchThatThrowsFailsItsRequestAndTheServerGoesOn) {
  auto scorer = CreateRuleScorer({Rule(RewardRule::CONTAINS, 1.0, "cat")});
  ASSERT_TRUE(scorer.ok()) << scorer.status();
  Serve(std::make_unique<ThrowingScorer>(std::move(*scorer)));
  rlhf::v1::ScoreRequest bad;
  AddText(&bad, "refuse");
  rlhf::v1::ScoreResponse bad_resp;
  ::grpc::Status status = Call(bad, &bad_resp);
  EXPECT_EQ(status.error_code(), ::grpc::StatusCode::INTERNAL);
  EXPECT_NE(status.error_message().find("model refused"), std::string::npos)
      << status.error_message();
  EXPECT_EQ(status.error_message().find("frame #"), std::string::npos) << status.error_message();
  rlhf::v1::ScoreRequest next;
  AddText(&next, "a cat");
  rlhf::v1::ScoreResponse next_resp;
  ASSERT_TRUE(Call(next, &next_resp).ok());
  ASSERT_EQ(next_resp.scores_size(), 1);
  EXPECT_EQ(next_resp.scores(0), 1.0f);
}

TEST_F(RewardServiceTest, BadRulesAreRejected) {
  EXPECT_EQ(CreateRuleScorer({}).status().code(), absl::StatusCode::kInvalidArgument);
  auto no_word = CreateRuleScorer({Rule(RewardRule::WORD_RATE, 1.0)});
  EXPECT_NE(no_word.status().message().find("rules[0]: needs a non-empty 'word'"),
            std::string::npos);
  auto bad_regex = CreateRuleScorer({Rule(RewardRule::REGEX_MATCH, 1.0, "", "(unclosed")});
  EXPECT_NE(bad_regex.status().message().find("bad pattern"), std::string::npos);
  auto backreference = CreateRuleScorer({Rule(RewardRule::REGEX_MATCH, 1.0, "", "(a)\\1")});
  EXPECT_NE(backreference.status().message().find("rules[0]: bad pattern '(a)\\1'"),
            std::string::npos)
      << backreference.status();
  auto no_kind = CreateRuleScorer({RewardRule()});
  EXPECT_NE(no_kind.status().message().find("'kind'"), std::string::npos);
}

TEST_F(RewardServiceTest, ModelScoresAreTheScalarHeadAtTheLastTokenAndBatchIndependent) {
  model::LlamaConfig c;
  c.dim = 32, c.hidden_dim = 64, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2;
  c.vocab_size = 40, c.max_seq_len = 32, c.lm_head = false, c.scalar_head = true;
  auto model = model::CreateRandomLlama(c, 3);
  ASSERT_TRUE(model.ok());
  const std::string dir = ::testing::TempDir() + "/reward_model_" + std::to_string(getpid());
  ASSERT_TRUE(checkpoint::SaveHfLlama(*model, dir, torch::kFloat32).ok());
  auto scorer = CreateModelScorer(dir);
  ASSERT_TRUE(scorer.ok()) << scorer.status();
  Serve(std::move(*scorer));
  const std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> pairs = {
      {{1, 5, 6}, {7, 8}}, {{1, 9}, {10, 11, 12, 13}}, {{1}, {2}}};
  rlhf::v1::ScoreRequest req;
  std::vector<std::vector<int64_t>> full;
  for (const auto& [p, r] : pairs) {
    auto* item = req.add_items();
    item->mutable_prompt_tokens()->Add(p.begin(), p.end());
    item->mutable_response_tokens()->Add(r.begin(), r.end());
    full.push_back(p);
    full.back().insert(full.back().end(), r.begin(), r.end());
  }
  rlhf::v1::ScoreResponse resp;
  ASSERT_TRUE(Call(req, &resp).ok());
  auto values = model::ScoreValues(*model, full);
  ASSERT_TRUE(values.ok());
  for (size_t i = 0; i < pairs.size(); ++i) {
    EXPECT_NEAR(resp.scores(i), (*values)[i].back(), 1e-5) << i;
  }
  // Bad input: token outside the vocabulary, empty response, too many items.
  rlhf::v1::ScoreRequest bad;
  bad.add_items()->mutable_response_tokens()->Add(40);
  EXPECT_NE(Call(bad, &resp).error_message().find("item 0: token id 40"), std::string::npos);
  rlhf::v1::ScoreRequest empty_response;
  empty_response.add_items()->mutable_prompt_tokens()->Add(1);
  EXPECT_NE(Call(empty_response, &resp).error_message().find("empty response"),
            std::string::npos);
  rlhf::v1::ScoreRequest too_many;
  for (int i = 0; i < 5; ++i) too_many.add_items()->mutable_response_tokens()->Add(3);
  EXPECT_EQ(Call(too_many, &resp).error_code(), grpc::RESOURCE_EXHAUSTED);
  EXPECT_EQ(Call(rlhf::v1::ScoreRequest(), &resp).error_code(), grpc::INVALID_ARGUMENT);
  std::filesystem::remove_all(dir);
}

TEST_F(RewardServiceTest, ModelWithoutScalarHeadIsRejected) {
  model::LlamaConfig c;
  c.dim = 16, c.hidden_dim = 32, c.n_layers = 1, c.n_heads = 2, c.n_kv_heads = 2;
  c.vocab_size = 20, c.max_seq_len = 16;
  auto model = model::CreateRandomLlama(c, 1);
  const std::string dir = ::testing::TempDir() + "/lm_only_" + std::to_string(getpid());
  ASSERT_TRUE(checkpoint::SaveHfLlama(*model, dir, torch::kFloat32).ok());
  auto scorer = CreateModelScorer(dir);
  EXPECT_EQ(scorer.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(scorer.status().message().find("scalar head"), std::string::npos);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace rlhf::reward
