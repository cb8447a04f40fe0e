// Starts the real reference service on 127.0.0.1:0 with stories260K and talks to it over TCP.
#include "services/reference/reference_service.h"

#include <cmath>
#include <limits>
#include <thread>

#include <gtest/gtest.h>

#include "common/checkpoint/checkpoint.h"
#include "common/grpc/server.h"
#include "common/grpc/status_util.h"
#include "common/testing/shared_data.h"

namespace rlhf::reference {
namespace {

class ReferenceServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto model = checkpoint::LoadModel(testing::SharedPath("models/stories260K.bin"));
    ASSERT_TRUE(model.ok()) << model.status();
    ReferenceServiceOptions opts;
    opts.max_request_sequences = 8;
    opts.batching.max_batch = 16;
    auto service = ReferenceService::Create(*model, opts);
    ASSERT_TRUE(service.ok()) << service.status();
    service_ = std::move(*service);
    auto server = grpc_util::Server::Start({}, {service_.get()}, {"rlhf.v1.Reference"});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    auto channel = grpc_util::CreateChannel(server_->address());
    ASSERT_TRUE(grpc_util::WaitForServing(channel, "rlhf.v1.Reference",
                                          absl::Now() + absl::Seconds(10))
                    .ok());
    stub_ = rlhf::v1::Reference::NewStub(channel);
    golden_ = testing::LoadSharedJson("golden/model_stories260K.json");
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  ::grpc::Status Call(const rlhf::v1::LogProbsRequest& req, rlhf::v1::LogProbsResponse* resp) {
    ::grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return stub_->LogProbs(&ctx, req, resp);
  }

  static void AddSequence(rlhf::v1::LogProbsRequest* req, const std::vector<int64_t>& tokens,
                          int start) {
    auto* seq = req->add_sequences();
    seq->mutable_tokens()->Add(tokens.begin(), tokens.end());
    seq->set_start(start);
  }

  std::unique_ptr<ReferenceService> service_;
  std::unique_ptr<grpc_util::Server> server_;
  std::unique_ptr<rlhf::v1::Reference::Stub> stub_;
  nlohmann::json golden_;
};

TEST_F(ReferenceServiceTest, LogProbsMatchGoldenFromStartPosition) {
  rlhf::v1::LogProbsRequest req;
  std::vector<std::vector<double>> expected;
  for (const auto& c : golden_["cases"]) {
    auto tokens = c["tokens"].get<std::vector<int64_t>>();
    if (tokens.size() < 3) continue;
    AddSequence(&req, tokens, 2);  // score from the third token on
    auto all = c["token_logprobs"].get<std::vector<double>>();
    expected.emplace_back(all.begin() + 1, all.end());
  }
  rlhf::v1::LogProbsResponse resp;
  ASSERT_TRUE(Call(req, &resp).ok());
  ASSERT_EQ(resp.results_size(), static_cast<int>(expected.size()));
  for (size_t i = 0; i < expected.size(); ++i) {
    ASSERT_EQ(resp.results(i).logprobs_size(), static_cast<int>(expected[i].size()));
    for (size_t t = 0; t < expected[i].size(); ++t) {
      EXPECT_NEAR(resp.results(i).logprobs(t), expected[i][t], 2e-4);
    }
  }
}

TEST_F(ReferenceServiceTest, ConcurrentClientsGetTheirOwnResults) {
  const auto& c = golden_["cases"][golden_["cases"].size() - 1];
  auto tokens = c["tokens"].get<std::vector<int64_t>>();
  auto expected = c["token_logprobs"].get<std::vector<double>>();
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int k = 0; k < 8; ++k) {
    clients.emplace_back([&, k] {
      rlhf::v1::LogProbsRequest req;
      // Each client sends a prefix of a different length: results must not mix up.
      std::vector<int64_t> prefix(tokens.begin(), tokens.begin() + 3 + k);
      AddSequence(&req, prefix, 1);
      rlhf::v1::LogProbsResponse resp;
      if (!Call(req, &resp).ok() || resp.results_size() != 1) return;
      const auto& lp = resp.results(0).logprobs();
      if (lp.size() != static_cast<int>(prefix.size()) - 1) return;
      for (int t = 0; t < lp.size(); ++t) {
        if (std::abs(lp[t] - expected[t]) > 2e-4) return;
      }
      ++ok;
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), 8);
}

TEST_F(ReferenceServiceTest, MalformedRequestsAreRejectedWithMessages) {
  struct Case {
    std::vector<std::vector<int64_t>> seqs;
    int start;
    float temperature;
    grpc::StatusCode code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{}, 1, 1, grpc::INVALID_ARGUMENT, "empty batch"},
      {{{1, 2, 999}}, 1, 1, grpc::INVALID_ARGUMENT, "outside the vocabulary"},
      {{{1, 2, -1}}, 1, 1, grpc::INVALID_ARGUMENT, "outside the vocabulary"},
      {{{1, 2, 3}}, 0, 1, grpc::INVALID_ARGUMENT, "start 0"},
      {{{1, 2, 3}}, 3, 1, grpc::INVALID_ARGUMENT, "start 3"},
      {{{1}}, 1, 1, grpc::INVALID_ARGUMENT, "start 1"},
      {{{1, 2}}, 1, -1, grpc::INVALID_ARGUMENT, "temperature"},
      {{{1, 2}}, 1, std::nanf(""), grpc::INVALID_ARGUMENT, "temperature must be finite"},
      {{{1, 2}}, 1, std::numeric_limits<float>::infinity(), grpc::INVALID_ARGUMENT,
       "temperature must be finite"},
      {std::vector<std::vector<int64_t>>(9, {1, 2}), 1, 1, grpc::RESOURCE_EXHAUSTED, "limit is 8"},
      {{std::vector<int64_t>(600, 5)}, 1, 1, grpc::INVALID_ARGUMENT, "context of 512"},
  };
  for (const auto& c : cases) {
    rlhf::v1::LogProbsRequest req;
    req.set_temperature(c.temperature);
    for (const auto& s : c.seqs) AddSequence(&req, s, c.start);
    rlhf::v1::LogProbsResponse resp;
    ::grpc::Status st = Call(req, &resp);
    EXPECT_EQ(st.error_code(), c.code) << c.message << ": " << st.error_message();
    EXPECT_NE(st.error_message().find(c.message), std::string::npos) << st.error_message();
  }
  // The server is still healthy afterwards.
  rlhf::v1::LogProbsRequest good;
  AddSequence(&good, {1, 2, 3}, 1);
  rlhf::v1::LogProbsResponse resp;
  EXPECT_TRUE(Call(good, &resp).ok());
}

}  // namespace
}  // namespace rlhf::reference
