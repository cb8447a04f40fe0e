// Bad inputs to the reward, reference and rollout RPCs, each against its real service serving on
// 127.0.0.1:0 (a tiny random Llama, no fixture needed). After each row the same server answers a
// good request. The reward rows include acceptance point 6 of issue 18: the rule (a+)+b on
// 100,000 a's answers, and the service answers the next request.
#include <cmath>
#include <limits>

#include "common/checkpoint/hf.h"
#include "common/grpc/server.h"
#include "common/model/llama.h"
#include "common/testing/tiny_llama.h"
#include "services/reference/reference_service.h"
#include "services/reward/reward_service.h"
#include "services/rollout/rollout_service.h"
#include "tests/bad_inputs/catalogue.h"

namespace rlhf::bad_inputs {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

Answer FromGrpc(const ::grpc::Status& s) {
  return {absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code())),
          s.error_message()};
}

template <typename Stub>
std::unique_ptr<Stub> Connect(const grpc_util::Server& server, const std::string& service) {
  auto channel = grpc_util::CreateChannel(server.address());
  EXPECT_TRUE(grpc_util::WaitForServing(channel, service, absl::Now() + absl::Seconds(10)).ok());
  return std::make_unique<Stub>(channel);
}

std::chrono::system_clock::time_point Deadline() {
  return std::chrono::system_clock::now() + std::chrono::seconds(30);
}

// ---------------------------------------------------------------------------------------------
// Reward: a rule server ((a+)+b and "cat") and a model server (scalar head, vocabulary 40).

class RewardEnv {
 public:
  RewardEnv() : dir_("reward") {
    rlhf::v1::RewardRule regex;
    regex.set_kind(rlhf::v1::RewardRule::REGEX_MATCH);
    regex.set_weight(1.0);
    regex.set_pattern("(a+)+b");
    auto rules = reward::CreateRuleScorer({regex});
    EXPECT_TRUE(rules.ok()) << rules.status();
    rule_stub_ = Serve(std::move(*rules), &rule_service_, &rule_server_);
    model::LlamaConfig c = testing::TinyLlamaConfig();
    c.lm_head = false;
    c.scalar_head = true;
    auto model = model::CreateRandomLlama(c, 3);
    EXPECT_TRUE(model.ok());
    EXPECT_TRUE(checkpoint::SaveHfLlama(*model, dir_.path(), torch::kFloat32).ok());
    auto scorer = reward::CreateModelScorer(dir_.path());
    EXPECT_TRUE(scorer.ok()) << scorer.status();
    model_stub_ = Serve(std::move(*scorer), &model_service_, &model_server_);
  }
  ~RewardEnv() {
    rule_server_->Shutdown();
    model_server_->Shutdown();
  }

  Answer ScoreRules(const rlhf::v1::ScoreRequest& request, rlhf::v1::ScoreResponse* response) {
    ::grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    return FromGrpc(rule_stub_->Score(&ctx, request, response));
  }
  Answer ScoreModel(const rlhf::v1::ScoreRequest& request) {
    ::grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    rlhf::v1::ScoreResponse response;
    return FromGrpc(model_stub_->Score(&ctx, request, &response));
  }

 private:
  static std::unique_ptr<rlhf::v1::Reward::Stub> Serve(
      std::unique_ptr<reward::Scorer> scorer, std::unique_ptr<reward::RewardService>* service,
      std::unique_ptr<grpc_util::Server>* server) {
    reward::RewardServiceOptions options;
    options.max_request_items = 4;
    options.max_text_bytes = 200000;  // above the catastrophic-regex case's 100,000
    auto created = reward::RewardService::Create(std::move(scorer), options);
    EXPECT_TRUE(created.ok()) << created.status();
    *service = std::move(*created);
    auto started = grpc_util::Server::Start({}, {service->get()}, {"rlhf.v1.Reward"});
    EXPECT_TRUE(started.ok()) << started.status();
    *server = std::move(*started);
    return Connect<rlhf::v1::Reward::Stub>(**server, "rlhf.v1.Reward");
  }

  TempDir dir_;
  std::unique_ptr<reward::RewardService> rule_service_, model_service_;
  std::unique_ptr<grpc_util::Server> rule_server_, model_server_;
  std::unique_ptr<rlhf::v1::Reward::Stub> rule_stub_, model_stub_;
};

// A model-scorer request of `items` (prompt, response) token lists.
rlhf::v1::ScoreRequest TokenItems(
    const std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>>& items) {
  rlhf::v1::ScoreRequest r;
  for (const auto& [prompt, response] : items) {
    auto* item = r.add_items();
    item->mutable_prompt_tokens()->Add(prompt.begin(), prompt.end());
    item->mutable_response_tokens()->Add(response.begin(), response.end());
  }
  return r;
}

rlhf::v1::ScoreRequest TextItems(const std::vector<std::string>& texts) {
  rlhf::v1::ScoreRequest r;
  for (const std::string& text : texts) r.add_items()->set_response_text(text);
  return r;
}

using RewardCase = Case<RewardEnv>;

const std::vector<RewardCase> kRewardCases = RegisterCases<RewardEnv>(
    "reward Score",
    {
        {"score-empty-batch", "a ScoreRequest with no items", "INVALID_ARGUMENT", "no items",
         [](RewardEnv& env) { return env.ScoreModel({}); }},
        {"score-too-many-items", "5 items; the limit is 4", "RESOURCE_EXHAUSTED",
         "5 items in one request",
         [](RewardEnv& env) { return env.ScoreModel(TokenItems({{{1}, {2}}, {{1}, {2}}, {{1}, {2}},
                                                                {{1}, {2}}, {{1}, {2}}})); }},
        {"score-empty-response", "item 1 has neither response tokens nor text", "INVALID_ARGUMENT",
         "item 1: empty response",
         [](RewardEnv& env) { return env.ScoreModel(TokenItems({{{1}, {2}}, {{1}, {}}})); }},
        {"score-token-outside-vocab", "response token 40 in a vocabulary of 40",
         "INVALID_ARGUMENT", "item 0: token id 40",
         [](RewardEnv& env) { return env.ScoreModel(TokenItems({{{1}, {40}}})); }},
        {"score-negative-token", "prompt token -2", "INVALID_ARGUMENT", "item 0: token id -2",
         [](RewardEnv& env) { return env.ScoreModel(TokenItems({{{1, -2}, {3}}})); }},
        {"score-longer-than-context", "60 + 10 tokens for a context of 64", "INVALID_ARGUMENT",
         "item 0: prompt + response is 70 tokens",
         [](RewardEnv& env) {
           return env.ScoreModel(
               TokenItems({{std::vector<int64_t>(60, 3), std::vector<int64_t>(10, 4)}}));
         }},
        {"score-text-too-long", "a response text of 200,001 bytes; limits.max_text_bytes 200,000",
         "INVALID_ARGUMENT", "item 0: response_text has 200001 bytes",
         [](RewardEnv& env) {
           rlhf::v1::ScoreResponse response;
           return env.ScoreRules(TextItems({std::string(200001, 'a')}), &response);
         }},
        {"score-catastrophic-regex",
         "rule (a+)+b on a response of 100,000 a's (exponential for a backtracking engine)", "OK",
         "",
         [](RewardEnv& env) {
           rlhf::v1::ScoreResponse response;
           const absl::Time start = absl::Now();
           Answer a = env.ScoreRules(TextItems({std::string(100000, 'a')}), &response);
           EXPECT_LT(absl::Now() - start, absl::Seconds(5));
           EXPECT_EQ(response.scores_size(), 1);
           if (response.scores_size() == 1) EXPECT_EQ(response.scores(0), 0.0f);
           return a;
         }},
    });

class RewardRpcTest : public RowsWith<RewardCase, RewardEnv> {};

TEST_P(RewardRpcTest, AnsweredAndTheServiceGoesOn) {
  ExpectAnswer(GetParam(), GetParam().run(env()));
  rlhf::v1::ScoreResponse response;
  EXPECT_EQ(env().ScoreRules(TextItems({"aab"}), &response).code, "OK");
  ASSERT_EQ(response.scores_size(), 1);
  EXPECT_EQ(response.scores(0), 1.0f);
  EXPECT_EQ(env().ScoreModel(TokenItems({{{1, 5}, {6, 7}}})).code, "OK");
}

INSTANTIATE_TEST_SUITE_P(Catalogue, RewardRpcTest, ::testing::ValuesIn(kRewardCases),
                         CaseName<RewardEnv>);

// ---------------------------------------------------------------------------------------------
// Reference: per-token log-probs under a tiny random Llama (vocabulary 40, context 64).

class ReferenceEnv {
 public:
  ReferenceEnv() {
    auto model = model::CreateRandomLlama(testing::TinyLlamaConfig(), 5);
    EXPECT_TRUE(model.ok());
    reference::ReferenceServiceOptions options;
    options.max_request_sequences = 4;
    auto service = reference::ReferenceService::Create(*model, options);
    EXPECT_TRUE(service.ok()) << service.status();
    service_ = std::move(*service);
    auto server = grpc_util::Server::Start({}, {service_.get()}, {"rlhf.v1.Reference"});
    EXPECT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    stub_ = Connect<rlhf::v1::Reference::Stub>(*server_, "rlhf.v1.Reference");
  }
  ~ReferenceEnv() { server_->Shutdown(); }

  Answer LogProbs(const rlhf::v1::LogProbsRequest& request) {
    ::grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    rlhf::v1::LogProbsResponse response;
    return FromGrpc(stub_->LogProbs(&ctx, request, &response));
  }

 private:
  std::unique_ptr<reference::ReferenceService> service_;
  std::unique_ptr<grpc_util::Server> server_;
  std::unique_ptr<rlhf::v1::Reference::Stub> stub_;
};

// A request of one sequence {1, 5, 6, 7} scored from position 2, after `mutate`.
rlhf::v1::LogProbsRequest Sequence(
    const std::function<void(rlhf::v1::LogProbsRequest*)>& mutate = {}) {
  rlhf::v1::LogProbsRequest r;
  auto* seq = r.add_sequences();
  for (int64_t id : {1, 5, 6, 7}) seq->add_tokens(id);
  seq->set_start(2);
  if (mutate) mutate(&r);
  return r;
}

using ReferenceCase = Case<ReferenceEnv>;

ReferenceCase BadLogProbs(std::string id, std::string input, std::string code,
                          std::string needle,
                          std::function<void(rlhf::v1::LogProbsRequest*)> mutate) {
  return {std::move(id), std::move(input), std::move(code), std::move(needle),
          [mutate](ReferenceEnv& env) { return env.LogProbs(Sequence(mutate)); }};
}

const std::vector<ReferenceCase> kReferenceCases = RegisterCases<ReferenceEnv>(
    "reference LogProbs",
    {
        BadLogProbs("logprobs-empty-batch", "a LogProbsRequest with no sequences",
                    "INVALID_ARGUMENT", "no sequences",
                    [](rlhf::v1::LogProbsRequest* r) { r->clear_sequences(); }),
        BadLogProbs("logprobs-too-many-sequences", "5 sequences; the limit is 4",
                    "RESOURCE_EXHAUSTED", "5 sequences in one request",
                    [](rlhf::v1::LogProbsRequest* r) {
                      for (int i = 0; i < 4; ++i) *r->add_sequences() = r->sequences(0);
                    }),
        BadLogProbs("logprobs-nan-temperature", "temperature NaN", "INVALID_ARGUMENT",
                    "temperature must be finite",
                    [](rlhf::v1::LogProbsRequest* r) { r->set_temperature(kNaN); }),
        BadLogProbs("logprobs-inf-temperature", "temperature +Inf", "INVALID_ARGUMENT",
                    "temperature must be finite",
                    [](rlhf::v1::LogProbsRequest* r) { r->set_temperature(kInf); }),
        BadLogProbs("logprobs-negative-temperature", "temperature -1", "INVALID_ARGUMENT",
                    "temperature must be finite and >= 0",
                    [](rlhf::v1::LogProbsRequest* r) { r->set_temperature(-1); }),
        BadLogProbs("logprobs-start-zero", "start 0 (position 0 has no previous token)",
                    "INVALID_ARGUMENT", "sequence 0: start 0",
                    [](rlhf::v1::LogProbsRequest* r) { r->mutable_sequences(0)->set_start(0); }),
        BadLogProbs("logprobs-start-past-end", "start 4 in a sequence of 4 tokens",
                    "INVALID_ARGUMENT", "sequence 0: start 4",
                    [](rlhf::v1::LogProbsRequest* r) { r->mutable_sequences(0)->set_start(4); }),
        BadLogProbs("logprobs-token-outside-vocab", "token 41 in a vocabulary of 40",
                    "INVALID_ARGUMENT", "sequence 0: token id 41",
                    [](rlhf::v1::LogProbsRequest* r) { r->mutable_sequences(0)->set_tokens(3, 41); }),
        BadLogProbs("logprobs-longer-than-context", "65 tokens for a context of 64",
                    "INVALID_ARGUMENT", "sequence 0: 65 tokens exceed",
                    [](rlhf::v1::LogProbsRequest* r) {
                      for (int i = 0; i < 61; ++i) r->mutable_sequences(0)->add_tokens(3);
                    }),
    });

class ReferenceRpcTest : public RowsWith<ReferenceCase, ReferenceEnv> {};

TEST_P(ReferenceRpcTest, AnsweredAndTheServiceGoesOn) {
  ExpectAnswer(GetParam(), GetParam().run(env()));
  EXPECT_EQ(env().LogProbs(Sequence()).code, "OK");
}

INSTANTIATE_TEST_SUITE_P(Catalogue, ReferenceRpcTest, ::testing::ValuesIn(kReferenceCases),
                         CaseName<ReferenceEnv>);

// ---------------------------------------------------------------------------------------------
// Rollout: Generate with a tiny random Llama and no tokenizer (token prompts only).

class RolloutEnv {
 public:
  RolloutEnv() {
    auto model = model::CreateRandomLlama(testing::TinyLlamaConfig(), 7);
    EXPECT_TRUE(model.ok());
    auto policy = rollout::PolicyHolder::Create(*model, /*version=*/1);
    EXPECT_TRUE(policy.ok()) << policy.status();
    rollout::RolloutServiceOptions options;
    options.max_request_prompts = 4;
    auto service = rollout::RolloutService::Create(*policy, nullptr, options);
    EXPECT_TRUE(service.ok()) << service.status();
    service_ = std::move(*service);
    auto server = grpc_util::Server::Start({}, {service_.get()}, {"rlhf.v1.Rollout"});
    EXPECT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    stub_ = Connect<rlhf::v1::Rollout::Stub>(*server_, "rlhf.v1.Rollout");
  }
  ~RolloutEnv() { server_->Shutdown(); }

  Answer Generate(const rlhf::v1::GenerateRequest& request) {
    ::grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    rlhf::v1::GenerateResponse response;
    return FromGrpc(stub_->Generate(&ctx, request, &response));
  }

 private:
  std::unique_ptr<rollout::RolloutService> service_;
  std::unique_ptr<grpc_util::Server> server_;
  std::unique_ptr<rlhf::v1::Rollout::Stub> stub_;
};

// One prompt {1, 5, 6}, 4 new tokens, after `mutate`.
rlhf::v1::GenerateRequest Prompt(
    const std::function<void(rlhf::v1::GenerateRequest*)>& mutate = {}) {
  rlhf::v1::GenerateRequest r;
  auto* p = r.add_prompts();
  for (int64_t id : {1, 5, 6}) p->add_tokens(id);
  r.mutable_sampling()->set_max_new_tokens(4);
  r.mutable_sampling()->set_temperature(1.0f);
  if (mutate) mutate(&r);
  return r;
}

using RolloutCase = Case<RolloutEnv>;

RolloutCase BadGenerate(std::string id, std::string input, std::string code, std::string needle,
                        std::function<void(rlhf::v1::GenerateRequest*)> mutate) {
  return {std::move(id), std::move(input), std::move(code), std::move(needle),
          [mutate](RolloutEnv& env) { return env.Generate(Prompt(mutate)); }};
}

const std::vector<RolloutCase> kRolloutCases = RegisterCases<RolloutEnv>(
    "rollout Generate",
    {
        BadGenerate("generate-empty-batch", "a GenerateRequest with no prompts",
                    "INVALID_ARGUMENT", "no prompts",
                    [](rlhf::v1::GenerateRequest* r) { r->clear_prompts(); }),
        BadGenerate("generate-too-many-prompts", "5 prompts; the limit is 4",
                    "RESOURCE_EXHAUSTED", "5 prompts in one request",
                    [](rlhf::v1::GenerateRequest* r) {
                      for (int i = 0; i < 4; ++i) *r->add_prompts() = r->prompts(0);
                    }),
        BadGenerate("generate-nan-temperature", "sampling.temperature NaN", "INVALID_ARGUMENT",
                    "sampling.temperature must be finite",
                    [](rlhf::v1::GenerateRequest* r) {
                      r->mutable_sampling()->set_temperature(kNaN);
                    }),
        BadGenerate("generate-inf-temperature", "sampling.temperature +Inf", "INVALID_ARGUMENT",
                    "sampling.temperature must be finite",
                    [](rlhf::v1::GenerateRequest* r) {
                      r->mutable_sampling()->set_temperature(kInf);
                    }),
        BadGenerate("generate-negative-temperature", "sampling.temperature -0.5",
                    "INVALID_ARGUMENT", "temperature must be >= 0",
                    [](rlhf::v1::GenerateRequest* r) {
                      r->mutable_sampling()->set_temperature(-0.5f);
                    }),
        BadGenerate("generate-negative-max-new-tokens", "sampling.max_new_tokens -1",
                    "INVALID_ARGUMENT", "sampling.max_new_tokens must be >= 0",
                    [](rlhf::v1::GenerateRequest* r) {
                      r->mutable_sampling()->set_max_new_tokens(-1);
                    }),
        BadGenerate("generate-nan-top-p", "sampling.top_p NaN", "INVALID_ARGUMENT",
                    "sampling.top_p must be in [0, 1]",
                    [](rlhf::v1::GenerateRequest* r) { r->mutable_sampling()->set_top_p(kNaN); }),
        BadGenerate("generate-top-p-above-one", "sampling.top_p 1.5", "INVALID_ARGUMENT",
                    "top_p must be in (0, 1]",
                    [](rlhf::v1::GenerateRequest* r) { r->mutable_sampling()->set_top_p(1.5f); }),
        BadGenerate("generate-negative-top-k", "sampling.top_k -1", "INVALID_ARGUMENT",
                    "top_k must be >= 0",
                    [](rlhf::v1::GenerateRequest* r) { r->mutable_sampling()->set_top_k(-1); }),
        BadGenerate("generate-token-outside-vocab", "prompt token 40 in a vocabulary of 40",
                    "INVALID_ARGUMENT", "prompt 0 has token id 40",
                    [](rlhf::v1::GenerateRequest* r) {
                      r->mutable_prompts(0)->set_tokens(2, 40);
                    }),
        BadGenerate("generate-empty-prompt", "a prompt with neither tokens nor text",
                    "INVALID_ARGUMENT", "prompt 0 is empty",
                    [](rlhf::v1::GenerateRequest* r) { r->mutable_prompts(0)->clear_tokens(); }),
        BadGenerate("generate-text-without-tokenizer",
                    "a text prompt to a worker that has no tokenizer", "INVALID_ARGUMENT",
                    "prompt 0: text given",
                    [](rlhf::v1::GenerateRequest* r) {
                      r->mutable_prompts(0)->clear_tokens();
                      r->mutable_prompts(0)->set_text("hello");
                    }),
        BadGenerate("generate-past-context", "3 prompt tokens + 62 new ones for a context of 64",
                    "INVALID_ARGUMENT", "max_new_tokens 62 exceeds",
                    [](rlhf::v1::GenerateRequest* r) {
                      r->mutable_sampling()->set_max_new_tokens(62);
                    }),
    });

class RolloutRpcTest : public RowsWith<RolloutCase, RolloutEnv> {};

TEST_P(RolloutRpcTest, AnsweredAndTheServiceGoesOn) {
  ExpectAnswer(GetParam(), GetParam().run(env()));
  EXPECT_EQ(env().Generate(Prompt()).code, "OK");
}

INSTANTIATE_TEST_SUITE_P(Catalogue, RolloutRpcTest, ::testing::ValuesIn(kRolloutCases),
                         CaseName<RolloutEnv>);

}  // namespace
}  // namespace rlhf::bad_inputs
