// The training jobs as a user runs them: `rlhf train-rm` and `rlhf sft` on small files, resumed
// runs ending where uninterrupted ones do, bad records reported by file and line, and a reward
// model from `rlhf train-rm` served by the reward service (a real process) with the scores that
// `rlhf eval` computes in process; both jobs as 2 data-parallel ranks writing what 1 rank writes.
#include <signal.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/grpc/server.h"
#include "common/process/free_port.h"
#include "common/process/subprocess.h"
#include "common/testing/shared_data.h"
#include "common/tokenizer/tokenizer.h"
#include "rlhf/v1/services.grpc.pb.h"
#include "tests/cli_runner.h"

namespace rlhf {
namespace {

using nlohmann::json;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

const char* kAnimals[] = {"cat", "dog", "bird", "fish", "frog", "bear"};

// Pairs whose chosen response is kind and whose rejected one is rude: a content signal, with the
// lengths mixed so that length alone cannot tell them apart.
std::string WritePreferences(const std::string& name, int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string path = TempPath(name);
  std::ofstream out(path);
  for (int i = 0; i < n; ++i) {
    const std::string animal = kAnimals[rng() % 6];
    const std::string prompt = "Tell me about the " + animal + ".";
    const std::string kind = "The " + animal + " was kind and happy.";
    std::string rude = "The " + animal + " was mean.";
    if (rng() % 2) rude += " It ran away from home.";  // then the rude one is longer
    out << json{{"prompt", prompt}, {"chosen", kind}, {"rejected", rude}}.dump() << "\n";
  }
  return path;
}

std::string Tok() { return testing::SharedPath("models/tok512.model"); }

std::string RmArgs(const std::string& data, const std::string& out) {
  return absl::StrCat("train-rm --train ", data, " --tokenizer ", Tok(), " --out ", out,
                      " --dim 32 --layers 1 --heads 2 --max-seq-len 64 --epochs 6 --batch 8",
                      " --micro-batch 4 --lr 3e-3 --warmup 4 --seed 3 --checkpoint-every 0");
}

TEST(JobsE2eTest, TrainRmLearnsResumesExactlyAndMatchesTheRewardService) {
  const std::string data = WritePreferences("prefs.jsonl", 48, 1);
  const std::string out = TempPath("rm");
  Result r = RunCli(RmArgs(data, out) + " --normalize --test " + data);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json report = json::parse(r.out.substr(0, r.out.find('\n')));
  EXPECT_GT(report["accuracy"].get<double>(), 0.9) << r.out;
  EXPECT_TRUE(report["beats_baselines"].get<bool>());
  EXPECT_NE(r.err.find("train-rm: 36/36"), std::string::npos) << r.err;  // progress, not a TTY
  const json facts = json::parse(ReadAll(out + "/training.json"));
  EXPECT_EQ(facts["pairs"], 48);

  // Interrupted after 10 steps and resumed: the same final parameters, byte for byte.
  const std::string resumed = TempPath("rm_resumed");
  ASSERT_EQ(RunCli(RmArgs(data, resumed) + " --normalize --stop-after 10").exit_code, 0);
  Result second = RunCli(RmArgs(data, resumed) + " --normalize --resume");
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_NE(second.err.find("resumed from"), std::string::npos);
  EXPECT_EQ(ReadAll(out + "/model.safetensors"), ReadAll(resumed + "/model.safetensors"));

  // `rlhf eval` in process ...
  const std::string scores_path = TempPath("scores.jsonl");
  Result ev = RunCli(absl::StrCat("eval --rm ", out, " --data ", data, " --scores ", scores_path));
  ASSERT_EQ(ev.exit_code, 0) << ev.err;
  EXPECT_EQ(json::parse(ev.out)["accuracy"], report["accuracy"]);

  // A policy through the same reward model, with itself as the reference: KL 0.
  const std::string prompts = TempPath("prompts.jsonl");
  std::ofstream(prompts) << "{\"prompt\": \"Tell me about the cat.\"}\n"
                         << "{\"prompt\": \"Tell me about the dog.\"}\n";
  const std::string policy = testing::SharedPath("models/stories260K.bin");
  Result pol = RunCli(absl::StrCat("eval --policy ", policy, " --tokenizer ", Tok(), " --prompts ",
                                   prompts, " --rm ", out, " --reference ", policy,
                                   " --samples 1 --max-new-tokens 12"));
  ASSERT_EQ(pol.exit_code, 0) << pol.err;
  const json pr = json::parse(pol.out);
  EXPECT_EQ(pr["prompts"], 2);
  EXPECT_NEAR(pr["mean_kl"].get<double>(), 0.0, 1e-3);
  EXPECT_TRUE(pr.contains("mean_score"));
  EXPECT_EQ(pr["samples"].size(), 1u);

  // ... and the reward service (a real process) serving the same directory.
  const std::string config = TempPath("reward.json");
  std::ofstream(config) << json{{"model", out}, {"batching", {{"max_wait_ms", 1}}}}.dump();
  const std::string log = TempPath("reward.log");
  auto proc = process::Subprocess::Start(
      {RLHF_REWARD_BIN, "--config", config, "--port-file", "/dev/stdout"}, {log});
  ASSERT_TRUE(proc.ok()) << proc.status();
  auto port_line = (*proc)->ReadLine(absl::Seconds(60));
  int port = 0;
  ASSERT_TRUE(port_line.ok() && absl::SimpleAtoi(*port_line, &port)) << ReadAll(log);
  auto channel = grpc_util::CreateChannel(absl::StrCat("127.0.0.1:", port));
  ASSERT_TRUE(grpc_util::WaitForServing(channel, "rlhf.v1.Reward", absl::Now() + absl::Seconds(30))
                  .ok());
  auto tok = tokenizer::LoadTokenizer(Tok());
  ASSERT_TRUE(tok.ok());
  std::ifstream data_in(data), scores_in(scores_path);
  std::string data_line, score_line;
  rlhf::v1::ScoreRequest request;
  std::vector<float> expected;
  while (std::getline(data_in, data_line) && std::getline(scores_in, score_line)) {
    const json d = json::parse(data_line), s = json::parse(score_line);
    for (const char* side : {"chosen", "rejected"}) {
      auto* item = request.add_items();
      item->add_prompt_tokens((*tok)->bos_id());
      for (int id : (*tok)->Encode(d["prompt"].get<std::string>())) item->add_prompt_tokens(id);
      for (int id : (*tok)->Encode(d[side].get<std::string>())) item->add_response_tokens(id);
      expected.push_back(s[side].get<float>());
    }
  }
  ASSERT_EQ(expected.size(), 96u);
  auto stub = rlhf::v1::Reward::NewStub(channel);
  rlhf::v1::ScoreResponse response;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  ASSERT_TRUE(stub->Score(&ctx, request, &response).ok());
  ASSERT_EQ(response.scores_size(), 96);
  for (int i = 0; i < 96; ++i) EXPECT_NEAR(response.scores(i), expected[i], 1e-5) << i;
  (*proc)->Signal(SIGTERM);
  auto code = (*proc)->Wait(absl::Seconds(30));
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 0) << ReadAll(log);
}

// Runs `rlhf <args>` as each of `world_size` data-parallel ranks at once (torchrun variables on
// a loopback port); returns each rank's exit code and stderr.
std::vector<Result> RunRanks(int world_size, const std::string& args) {
  const int port = process::FreeLoopbackPort();
  std::vector<Result> results(world_size);
  std::vector<std::thread> threads;
  for (int r = 0; r < world_size; ++r) {
    threads.emplace_back([&, r] {
      const std::string err_path = TempPath(absl::StrCat("rank", r, ".err"));
      const std::string cmd = absl::StrCat(
          "RANK=", r, " WORLD_SIZE=", world_size, " MASTER_ADDR=127.0.0.1 MASTER_PORT=", port,
          " ", RLHF_CLI_PATH, " --threads 1 ", args, " 2>", err_path, " >/dev/null");
      const int status = std::system(cmd.c_str());
      results[r].exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      results[r].err = ReadAll(err_path);
    });
  }
  for (auto& t : threads) t.join();
  return results;
}

// `rlhf train-rm` and `rlhf sft` as 2 data-parallel ranks (each takes half of every batch, the
// gradients are all-reduced): rank 0 writes what 1 rank with whole batches writes.
TEST(JobsE2eTest, TrainRmAndSftOnTwoRanksMatchOneRank) {
  const std::string data = WritePreferences("prefs_ranks.jsonl", 32, 4);
  const std::string one = TempPath("rm_one_rank"), two = TempPath("rm_two_ranks");
  ASSERT_EQ(RunCli(RmArgs(data, one)).exit_code, 0);
  std::vector<Result> ranks = RunRanks(2, RmArgs(data, two));
  for (const Result& r : ranks) ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(ranks[1].err.find("train-rm: rank 1 joined (gloo)"), std::string::npos) << ranks[1].err;
  // The reward trainer's sums are exact in float: the same bytes.
  EXPECT_EQ(ReadAll(one + "/model.safetensors"), ReadAll(two + "/model.safetensors"));

  const std::string sft_data = TempPath("sft_ranks.jsonl");
  {
    std::ofstream out(sft_data);
    for (int i = 0; i < 48; ++i) {
      const std::string a = kAnimals[i % 6];
      out << json{{"prompt", "Where is the " + a + "?"}, {"response", "The " + a + " is home."}}
                 .dump()
          << "\n";
    }
  }
  auto sft = [&](const std::string& out) {
    return absl::StrCat("sft --data ", sft_data, " --tokenizer ", Tok(), " --out ", out,
                        " --dim 32 --layers 1 --heads 2 --max-seq-len 64 --epochs 2 --batch 8",
                        " --micro-batch 4 --lr 3e-3 --warmup 2 --eval-fraction 0.2 --seed 2");
  };
  const std::string sft_one = TempPath("sft_one_rank"), sft_two = TempPath("sft_two_ranks");
  ASSERT_EQ(RunCli(sft(sft_one)).exit_code, 0);
  ranks = RunRanks(2, sft(sft_two));
  for (const Result& r : ranks) ASSERT_EQ(r.exit_code, 0) << r.err;
  const json a = json::parse(ReadAll(sft_one + "/training.json"));
  const json b = json::parse(ReadAll(sft_two + "/training.json"));
  ASSERT_EQ(a["eval"].size(), b["eval"].size());
  for (size_t i = 0; i < a["eval"].size(); ++i) {
    EXPECT_NEAR(a["eval"][i]["eval_loss"].get<double>(), b["eval"][i]["eval_loss"].get<double>(),
                1e-4)
        << a.dump() << "\n" << b.dump();
  }
}

TEST(JobsE2eTest, BadRecordsAreReportedByLineSkippedOrFatal) {
  std::string data = WritePreferences("bad.jsonl", 16, 2);
  {
    std::ofstream out(data, std::ios::app);
    out << "{not json\n";
    out << json{{"prompt", "p"}, {"chosen", "a"}}.dump() << "\n";  // no rejected
    out << json{{"prompt", "p"}, {"a", "x"}, {"b", "y"}, {"p_a", 1.5}}.dump() << "\n";
    out << json{{"prompt", "p"}, {"chosen", ""}, {"rejected", "y"}}.dump() << "\n";
    out << json{{"prompt", "p"}, {"chosen", std::string(300, 'z')}, {"rejected", "y"}}.dump()
        << "\n";  // longer than the 64-token context
  }
  Result skipped = RunCli(RmArgs(data, TempPath("rm_bad")));
  ASSERT_EQ(skipped.exit_code, 0) << skipped.err;
  for (int line : {17, 18, 19, 20, 21}) {
    EXPECT_NE(skipped.err.find(absl::StrCat(data, ":", line, ":")), std::string::npos)
        << line << "\n" << skipped.err;
  }
  EXPECT_NE(skipped.err.find("16 pairs (5 skipped)"), std::string::npos) << skipped.err;

  Result strict = RunCli(RmArgs(data, TempPath("rm_strict")) + " --strict");
  EXPECT_NE(strict.exit_code, 0);
  EXPECT_NE(strict.err.find(absl::StrCat(data, ":17:")), std::string::npos) << strict.err;

  Result too_many = RunCli(RmArgs(data, TempPath("rm_many")) + " --max-bad 2");
  EXPECT_NE(too_many.exit_code, 0);
  EXPECT_NE(too_many.err.find("more than 2 bad records"), std::string::npos) << too_many.err;
}

TEST(JobsE2eTest, SftOnHhTranscriptsLowersHeldOutLossAndResumesExactly) {
  // HH transcripts: trained on the Assistant turns only.
  const std::string data = TempPath("sft.jsonl");
  {
    std::mt19937_64 rng(5);
    std::ofstream out(data);
    for (int i = 0; i < 120; ++i) {
      const std::string a = kAnimals[rng() % 6];
      out << json{{"chosen", "\n\nHuman: Where does the " + a + " live?\n\nAssistant: The " + a +
                                 " lives in the " + a + " house."}}
                 .dump()
          << "\n";
    }
  }
  // The fresh model's dims from a --config file.
  const std::string dims = TempPath("dims.json");
  std::ofstream(dims) << R"({"dim": 32, "layers": 1, "heads": 2, "max_seq_len": 64})";
  auto args = [&](const std::string& out) {
    return absl::StrCat("sft --data ", data, " --tokenizer ", Tok(), " --out ", out,
                        " --config ", dims, " --epochs 4 --batch 8",
                        " --micro-batch 4 --lr 3e-3 --warmup 4 --eval-fraction 0.1",
                        " --eval-every 0 --checkpoint-every 0 --seed 2");
  };
  const std::string out = TempPath("sft");
  Result r = RunCli(args(out));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json facts = json::parse(ReadAll(out + "/training.json"));
  ASSERT_EQ(facts["eval"].size(), 2u);  // before and after
  EXPECT_LT(facts["eval"][1]["eval_loss"].get<double>(),
            facts["eval"][0]["eval_loss"].get<double>() - 1.0)
      << facts.dump();
  EXPECT_EQ(facts["eval_sequences"], 12);
  EXPECT_EQ(json::parse(ReadAll(out + "/config.json"))["num_hidden_layers"], 1);
  std::ofstream(TempPath("bad_dims.json")) << R"({"dim": 32, "depth": 3})";
  Result bad = RunCli(absl::StrCat("sft --data ", data, " --tokenizer ", Tok(), " --out ",
                                   TempPath("sft_bad"), " --config ", TempPath("bad_dims.json")));
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("unknown key \"depth\""), std::string::npos) << bad.err;

  const std::string resumed = TempPath("sft_resumed");
  ASSERT_EQ(RunCli(args(resumed) + " --stop-after 20").exit_code, 0);
  ASSERT_EQ(RunCli(args(resumed) + " --resume").exit_code, 0);
  EXPECT_EQ(ReadAll(out + "/model.safetensors"), ReadAll(resumed + "/model.safetensors"));
}

}  // namespace
}  // namespace rlhf
