// Starts the rollout Generate service on 127.0.0.1:0 with stories260K + tok512 and calls it.
#include "services/rollout/rollout_service.h"

#include <cmath>
#include <limits>
#include <thread>

#include <gtest/gtest.h>

#include "common/checkpoint/checkpoint.h"
#include "common/grpc/server.h"
#include "common/testing/shared_data.h"

namespace rlhf::rollout {
namespace {

// Log-probs of the service (batched) against the engine run alone: float32 round-off of
// differently shaped matrix products, about 1e-5 relative on log-probs near -1.
constexpr double kBatchedLogprobTolerance = 5e-5;

class RolloutServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto model = checkpoint::LoadModel(testing::SharedPath("models/stories260K.bin"));
    ASSERT_TRUE(model.ok()) << model.status();
    auto policy = PolicyHolder::Create(*model, /*version=*/7);
    ASSERT_TRUE(policy.ok()) << policy.status();
    policy_ = *policy;
    auto reference_engine = model::GenerationEngine::Create(*model);
    reference_ = std::move(*reference_engine);
    auto tok = tokenizer::LoadTokenizer(testing::SharedPath("models/tok512.model"));
    ASSERT_TRUE(tok.ok()) << tok.status();
    RolloutServiceOptions opts;
    opts.max_request_prompts = 4;
    auto service = RolloutService::Create(policy_, std::move(*tok), opts);
    ASSERT_TRUE(service.ok()) << service.status();
    service_ = std::move(*service);
    auto server = grpc_util::Server::Start({}, {service_.get()}, {"rlhf.v1.Rollout"});
    ASSERT_TRUE(server.ok());
    server_ = std::move(*server);
    auto channel = grpc_util::CreateChannel(server_->address());
    ASSERT_TRUE(grpc_util::WaitForServing(channel, "rlhf.v1.Rollout",
                                          absl::Now() + absl::Seconds(10)).ok());
    stub_ = rlhf::v1::Rollout::NewStub(channel);
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
  }
  ::grpc::Status Call(const rlhf::v1::GenerateRequest& req, rlhf::v1::GenerateResponse* resp) {
    ::grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    return stub_->Generate(&ctx, req, resp);
  }

  std::shared_ptr<PolicyHolder> policy_;
  std::unique_ptr<model::GenerationEngine> reference_;
  std::unique_ptr<RolloutService> service_;
  std::unique_ptr<grpc_util::Server> server_;
  std::unique_ptr<rlhf::v1::Rollout::Stub> stub_;
};

TEST_F(RolloutServiceTest, GeneratesLikeTheEngineForTokenAndTextPrompts) {
  rlhf::v1::GenerateRequest req;
  req.mutable_sampling()->set_temperature(0.8f);
  req.mutable_sampling()->set_max_new_tokens(12);
  req.mutable_sampling()->set_seed(100);
  const std::vector<int64_t> tokens = {1, 274, 287, 381};
  req.add_prompts()->mutable_tokens()->Add(tokens.begin(), tokens.end());
  req.add_prompts()->set_text("Once upon a time");
  rlhf::v1::GenerateResponse resp;
  ASSERT_TRUE(Call(req, &resp).ok());
  EXPECT_EQ(resp.policy_version(), 7);
  ASSERT_EQ(resp.generations_size(), 2);
  model::SamplingOptions opts;
  opts.temperature = 0.8f;
  opts.max_new_tokens = 12;
  auto direct = reference_->Generate({tokens}, opts, {100});
  ASSERT_TRUE(direct.ok());
  const auto& g = resp.generations(0);
  EXPECT_EQ(std::vector<int64_t>(g.tokens().begin(), g.tokens().end()), (*direct)[0].tokens);
  ASSERT_EQ(g.logprobs_size(), g.tokens_size());
  // The service runs this prompt in one batch with the text prompt, the engine alone: the
  // matrix products' shapes differ, so float32 sums differ in order (1.2e-5 seen on an AMD
  // EPYC with OpenBLAS); the tokens above are the exact check.
  for (int t = 0; t < g.logprobs_size(); ++t) {
    EXPECT_NEAR(g.logprobs(t), (*direct)[0].logprobs[t], kBatchedLogprobTolerance);
  }
  EXPECT_FALSE(resp.generations(1).text().empty());
  EXPECT_NE(resp.generations(1).finish_reason(), rlhf::v1::FINISH_REASON_UNSPECIFIED);
}

TEST_F(RolloutServiceTest, ConcurrentRequestsAreBatchedWithoutChangingResults) {
  auto make = [](int k) {
    rlhf::v1::GenerateRequest req;
    req.mutable_sampling()->set_temperature(1.0f);
    req.mutable_sampling()->set_max_new_tokens(8);
    req.mutable_sampling()->set_seed(k);
    for (int i = 0; i <= k % 3; ++i) {
      const std::vector<int64_t> p = {1, 10 + k, 20 + i};
      req.add_prompts()->mutable_tokens()->Add(p.begin(), p.end());
    }
    return req;
  };
  std::vector<rlhf::v1::GenerateResponse> alone(6), together(6);
  for (int k = 0; k < 6; ++k) ASSERT_TRUE(Call(make(k), &alone[k]).ok());
  std::vector<std::thread> threads;
  for (int k = 0; k < 6; ++k) {
    threads.emplace_back([&, k] { EXPECT_TRUE(Call(make(k), &together[k]).ok()); });
  }
  for (auto& t : threads) t.join();
  for (int k = 0; k < 6; ++k) {
    ASSERT_EQ(alone[k].generations_size(), together[k].generations_size());
    for (int i = 0; i < alone[k].generations_size(); ++i) {
      EXPECT_EQ(alone[k].generations(i).tokens_size(), together[k].generations(i).tokens_size());
      for (int t = 0; t < alone[k].generations(i).tokens_size(); ++t) {
        EXPECT_EQ(alone[k].generations(i).tokens(t), together[k].generations(i).tokens(t));
      }
    }
  }
}

TEST_F(RolloutServiceTest, SwappedPolicyIsUsedFromTheNextRequest) {
  auto model = checkpoint::LoadModel(testing::SharedPath("models/stories260K.bin"));
  ASSERT_TRUE(model.ok()) << model.status();
  {
    torch::NoGradGuard no_grad;
    for (auto& p : (*model)->parameters()) p.mul_(0.5);
  }
  auto engine = model::GenerationEngine::Create(*model);
  ASSERT_TRUE(engine.ok());
  std::shared_ptr<const model::GenerationEngine> swapped = std::move(*engine);
  policy_->Swap(swapped, 8);

  rlhf::v1::GenerateRequest req;
  req.mutable_sampling()->set_temperature(0);
  req.mutable_sampling()->set_max_new_tokens(10);
  const std::vector<int64_t> tokens = {1, 274, 287, 381};
  req.add_prompts()->mutable_tokens()->Add(tokens.begin(), tokens.end());
  rlhf::v1::GenerateResponse resp;
  ASSERT_TRUE(Call(req, &resp).ok());
  EXPECT_EQ(resp.policy_version(), 8);
  model::SamplingOptions opts;
  opts.temperature = 0;
  opts.max_new_tokens = 10;
  auto direct = swapped->Generate({tokens}, opts);
  ASSERT_TRUE(direct.ok());
  const auto& g = resp.generations(0);
  EXPECT_EQ(std::vector<int64_t>(g.tokens().begin(), g.tokens().end()), (*direct)[0].tokens);
  for (int t = 0; t < g.logprobs_size(); ++t) {
    EXPECT_NEAR(g.logprobs(t), (*direct)[0].logprobs[t], kBatchedLogprobTolerance);
  }
}

TEST_F(RolloutServiceTest, MalformedRequestsAreRejected) {
  struct Case {
    std::function<void(rlhf::v1::GenerateRequest*)> make;
    grpc::StatusCode code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {[](auto*) {}, grpc::INVALID_ARGUMENT, "empty batch"},
      {[](auto* r) { r->add_prompts(); }, grpc::INVALID_ARGUMENT, "prompt 0 is empty"},
      {[](auto* r) {
         auto* t = r->add_prompts()->mutable_tokens();
         t->Add(1);
         t->Add(512);
       },
       grpc::INVALID_ARGUMENT, "outside vocab"},
      {[](auto* r) {
         r->add_prompts()->mutable_tokens()->Add(1);
         r->mutable_sampling()->set_max_new_tokens(600);
       },
       grpc::INVALID_ARGUMENT, "max_seq_len"},
      {[](auto* r) {
         r->add_prompts()->mutable_tokens()->Add(1);
         r->mutable_sampling()->set_temperature(-1);
       },
       grpc::INVALID_ARGUMENT, "temperature"},
      {[](auto* r) {
         r->add_prompts()->mutable_tokens()->Add(1);
         r->mutable_sampling()->set_temperature(std::nanf(""));
       },
       grpc::INVALID_ARGUMENT, "temperature must be finite"},
      {[](auto* r) {
         r->add_prompts()->mutable_tokens()->Add(1);
         r->mutable_sampling()->set_temperature(std::numeric_limits<float>::infinity());
       },
       grpc::INVALID_ARGUMENT, "temperature must be finite"},
      {[](auto* r) {
         r->add_prompts()->mutable_tokens()->Add(1);
         r->mutable_sampling()->set_max_new_tokens(-5);
       },
       grpc::INVALID_ARGUMENT, "sampling.max_new_tokens must be >= 0"},
      {[](auto* r) {
         r->add_prompts()->mutable_tokens()->Add(1);
         r->mutable_sampling()->set_top_p(std::nanf(""));
       },
       grpc::INVALID_ARGUMENT, "sampling.top_p"},
      {[](auto* r) {
         for (int i = 0; i < 5; ++i) r->add_prompts()->mutable_tokens()->Add(1);
       },
       grpc::RESOURCE_EXHAUSTED, "limit is 4"},
  };
  for (const auto& c : cases) {
    rlhf::v1::GenerateRequest req;
    c.make(&req);
    rlhf::v1::GenerateResponse resp;
    auto st = Call(req, &resp);
    EXPECT_EQ(st.error_code(), c.code) << c.message << ": " << st.error_message();
    EXPECT_NE(st.error_message().find(c.message), std::string::npos) << st.error_message();
  }
}

}  // namespace
}  // namespace rlhf::rollout
