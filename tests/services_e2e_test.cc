// Runs the service binaries as separate processes, as the launcher and Kubernetes do: config
// file in, port out on stdout, health check, real RPCs over TCP, SIGTERM, clean exit.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/grpc/server.h"
#include "common/process/subprocess.h"
#include "common/testing/shared_data.h"
#include "rlhf/v1/services.grpc.pb.h"

namespace rlhf {
namespace {

std::string TempFile(const std::string& name, const std::string& contents) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/e2e_", getpid(), "_", name);
  std::ofstream(path) << contents;
  return path;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Starts `binary --config config --port-file /dev/stdout` and waits until it is SERVING.
struct RunningService {
  std::unique_ptr<process::Subprocess> proc;
  std::shared_ptr<grpc::Channel> channel;
  std::string stderr_path;
  int metrics_port = -1;
};

// GET /metrics from a service process.
std::string Scrape(int port) {
  httplib::Client client("127.0.0.1", port);
  auto res = client.Get("/metrics");
  return res && res->status == 200 ? res->body : "";
}

RunningService StartService(const std::string& binary, const std::string& config,
                            const std::string& service_name) {
  RunningService s;
  s.stderr_path = TempFile(service_name + ".log", "");
  auto proc = process::Subprocess::Start({binary, "--config", config, "--port-file", "/dev/stdout"},
                                         {s.stderr_path});
  EXPECT_TRUE(proc.ok()) << proc.status();
  s.proc = std::move(*proc);
  auto line = s.proc->ReadLine(absl::Seconds(60));
  EXPECT_TRUE(line.ok()) << line.status() << "\n" << ReadFile(s.stderr_path);
  int port = 0;
  EXPECT_TRUE(line.ok() && absl::SimpleAtoi(*line, &port)) << *line;
  auto metrics_line = s.proc->ReadLine(absl::Seconds(10));
  EXPECT_TRUE(metrics_line.ok() && absl::SimpleAtoi(*metrics_line, &s.metrics_port));
  s.channel = grpc_util::CreateChannel(absl::StrCat("127.0.0.1:", port));
  EXPECT_TRUE(
      grpc_util::WaitForServing(s.channel, service_name, absl::Now() + absl::Seconds(30)).ok());
  return s;
}

void StopAndExpectCleanExit(RunningService& s) {
  s.proc->Signal(SIGTERM);
  auto code = s.proc->Wait(absl::Seconds(30));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << ReadFile(s.stderr_path);
  EXPECT_NE(ReadFile(s.stderr_path).find("effective config"), std::string::npos);
}

TEST(ServicesE2eTest, RewardProcessScoresWithRulesAndStopsOnSigterm) {
  const std::string config = TempFile("reward.yaml",
                                      "rules:\n"
                                      "  - kind: WORD_RATE\n"
                                      "    word: cat\n"
                                      "batching:\n"
                                      "  max_wait_ms: 1\n");
  RunningService s = StartService(RLHF_REWARD_BIN, config, "rlhf.v1.Reward");
  auto stub = rlhf::v1::Reward::NewStub(s.channel);
  rlhf::v1::ScoreRequest req;
  req.add_items()->set_response_text("cat cat dog cat");
  rlhf::v1::ScoreResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  ASSERT_TRUE(stub->Score(&ctx, req, &resp).ok());
  ASSERT_EQ(resp.scores_size(), 1);
  EXPECT_FLOAT_EQ(resp.scores(0), 0.75f);
  StopAndExpectCleanExit(s);
}

TEST(ServicesE2eTest, ReferenceProcessServesLogProbs) {
  const std::string config = TempFile(
      "reference.json",
      absl::StrCat("{\"model\": \"", testing::SharedPath("models/stories260K.bin"), "\"}"));
  RunningService s = StartService(RLHF_REFERENCE_BIN, config, "rlhf.v1.Reference");
  auto stub = rlhf::v1::Reference::NewStub(s.channel);
  const auto golden = testing::LoadSharedJson("golden/model_stories260K.json")["cases"][1];
  const auto tokens = golden["tokens"].get<std::vector<int64_t>>();
  rlhf::v1::LogProbsRequest req;
  auto* seq = req.add_sequences();
  seq->mutable_tokens()->Add(tokens.begin(), tokens.end());
  seq->set_start(1);
  rlhf::v1::LogProbsResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  ASSERT_TRUE(stub->LogProbs(&ctx, req, &resp).ok());
  const auto expected = golden["token_logprobs"].get<std::vector<double>>();
  ASSERT_EQ(resp.results(0).logprobs_size(), static_cast<int>(expected.size()));
  for (size_t t = 0; t < expected.size(); ++t) {
    EXPECT_NEAR(resp.results(0).logprobs(t), expected[t], 2e-4);
  }
  // /metrics served by the same process that loaded LibTorch + OpenBLAS + glog.
  const std::string body = Scrape(s.metrics_port);
  EXPECT_NE(
      body.find("rlhf_rpc_requests_total{code=\"OK\",method=\"/rlhf.v1.Reference/LogProbs\"} 1"),
      std::string::npos)
      << body;
  EXPECT_NE(body.find("rlhf_batcher_items_total{batcher=\"reference\"} 1"), std::string::npos)
      << body;
  EXPECT_NE(body.find("rlhf_batcher_queued_items{batcher=\"reference\"} 0"), std::string::npos)
      << body;
  StopAndExpectCleanExit(s);
}

TEST(ServicesE2eTest, BadConfigsFailBeforeServingWithTheKeyNamed) {
  struct Case {
    std::string binary, file, contents, message;
  };
  const std::vector<Case> cases = {
      {RLHF_REWARD_BIN, "typo.yaml", "rulez: []\n", "did you mean 'rules'"},
      {RLHF_REWARD_BIN, "both.yaml", "model: /x\nrules: [{kind: CONTAINS, word: a}]\n",
       "exactly one of 'model' and 'rules'"},
      {RLHF_REWARD_BIN, "kind.yaml", "rules: [{kind: NOPE}]\n", "NOPE"},
      {RLHF_REFERENCE_BIN, "nomodel.yaml", "threads: 1\n", "'model' is required"},
      {RLHF_REFERENCE_BIN, "missing.yaml", "model: /nonexistent/m.bin\n", "/nonexistent/m.bin"},
  };
  for (const auto& c : cases) {
    const std::string log = TempFile(c.file + ".log", "");
    auto proc =
        process::Subprocess::Start({c.binary, "--config", TempFile(c.file, c.contents)}, {log});
    ASSERT_TRUE(proc.ok());
    auto code = (*proc)->Wait(absl::Seconds(60));
    ASSERT_TRUE(code.ok()) << c.file;
    EXPECT_EQ(*code, 1) << c.file;
    EXPECT_NE(ReadFile(log).find(c.message), std::string::npos) << c.file << ":\n" << ReadFile(log);
  }
}

}  // namespace
}  // namespace rlhf
