// The Constitutional AI jobs end to end, as clients of real services on the stories260K fixture
// (a rollout service for generation, a reference service for the feedback model's log-probs):
//  - `rlhf cai-revise`: rounds of critique and revision under principles drawn from the
//    constitution, mixed with helpful demonstrations, read back by `rlhf sft`;
//  - `rlhf cai-label`: soft labels p_a = softmax of the " (A)" / " (B)" log-probs averaged over
//    principles (checked against a LogProbs call of the test's own), clamped to [0.4, 0.6] with
//    chain of thought, read back by `rlhf train-rm`; bad input refused with its line.
// The prompts' exact text against the upstream files is common/cai/cai_test's.
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/cai/cai.h"
#include "common/grpc/server.h"
#include "common/launch/service_process.h"
#include "common/testing/shared_data.h"
#include "common/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "rlhf/v1/services.grpc.pb.h"
#include "tests/cli_runner.h"

namespace rlhf {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string Model() { return testing::SharedPath("models/stories260K.bin"); }
std::string Tok() { return testing::SharedPath("models/tok512.model"); }

std::string Write(const std::string& name, const std::string& text) {
  const std::string path = TempPath(name);
  std::ofstream(path) << text;
  return path;
}

std::vector<json> ReadLines(const std::string& path) {
  std::vector<json> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) out.push_back(json::parse(line));
  return out;
}

std::unique_ptr<launch::ServiceProcess> Start(const std::string& name, const std::string& binary,
                                              const json& config, const std::string& service) {
  const std::string path = TempPath(name + ".json");
  std::ofstream(path) << config.dump();
  launch::ServiceProcessOptions o;
  o.name = name;
  o.binary = binary;
  o.config_path = path;
  o.log_path = TempPath(name + ".log");
  o.health_service = service;
  auto p = launch::ServiceProcess::Start(o);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? std::move(*p) : nullptr;
}

class CaiE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const json server = {{"shutdown_grace_seconds", 1}};
    rollout_ = Start("cai_rollout", RLHF_ROLLOUT_BIN,
                     {{"server", server}, {"model", Model()}, {"tokenizer", Tok()}, {"threads", 1}},
                     "rlhf.v1.Rollout")
                   .release();
    reference_ =
        Start("cai_reference", RLHF_REFERENCE_BIN,
              {{"server", server}, {"model", Model()}, {"threads", 1}}, "rlhf.v1.Reference")
            .release();
  }
  static void TearDownTestSuite() {
    delete rollout_;
    delete reference_;
  }
  static launch::ServiceProcess* rollout_;
  static launch::ServiceProcess* reference_;
};
launch::ServiceProcess* CaiE2eTest::rollout_ = nullptr;
launch::ServiceProcess* CaiE2eTest::reference_ = nullptr;

const char* kPrompts =
    "{\"prompt\": \"Tom wants to hurt the dog.\"}\n{\"prompt\": \"Lily asks how to steal a "
    "cake.\"}\n{\"prompt\": \"Once upon a time\"}\n{\"prompt\": \"Ben and Mia\"}\n";

TEST_F(CaiE2eTest, ReviseCritiquesAndRevisesUnderPrinciplesAndFeedsSft) {
  ASSERT_TRUE(rollout_ && reference_);
  const std::string prompts = Write("cai_prompts.jsonl", kPrompts);
  const std::string constitution = Write("cai_constitution.json", R"([
    {"name": "kind", "critique_request": "Say how the story is unkind.", "revision_request": "Make the story kind."},
    {"name": "safe", "critique_request": "Say what is unsafe.", "revision_request": "Make it safe."}])");
  const std::string few_shot = Write(
      "cai_few_shot.json",
      R"(["\n\nHuman: Tell a story.\n\nAssistant: The cat was mean.\n\nCritiqueRequest: Say how the story is unkind.\n\nCritique: The cat is mean.\n\nRevisionRequest: Make the story kind.\n\nRevision: The cat was kind.\n\nHuman:"])");
  const std::string helpful =
      Write("cai_helpful.jsonl",
            "{\"prompt\": \"Tell me about the sun.\", \"response\": \"The sun is warm.\"}\n"
            "{\"prompt\": \"Who is Tom?\", \"response\": \"Tom is a boy.\"}\n");
  const std::string out = TempPath("cai_revisions.jsonl");
  Result r = RunCli(absl::StrCat("cai-revise --prompts ", prompts, " --constitution ", constitution,
                                 " --few-shot ", few_shot, " --rounds 2 --helpful ", helpful,
                                 " --helpful-fraction 0.5 --max-new-tokens 12 --seed 4",
                                 " --rollout ", rollout_->address(), " --out ", out));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<json> lines = ReadLines(out);
  ASSERT_EQ(lines.size(), 8u);  // 4 revisions + 4 helpful (half of the output)
  int revisions = 0;
  std::set<std::string> principles;
  for (const json& l : lines) {
    if (l.value("source", "") == "helpful") continue;
    ++revisions;
    SCOPED_TRACE(l.dump());
    EXPECT_EQ(l["prompt"].get<std::string>().rfind("\n\nHuman: ", 0), 0u);
    ASSERT_EQ(l["steps"].size(), 2u);
    for (const json& s : l["steps"]) principles.insert(s["principle"].get<std::string>());
    EXPECT_EQ(l["response"], l["steps"][1]["revision"]);
    EXPECT_TRUE(l.contains("initial_response"));
  }
  EXPECT_EQ(revisions, 4);
  for (const std::string& p : principles) EXPECT_TRUE(p == "kind" || p == "safe") << p;
  // The same run again: the same output (seeded draws and sampling).
  const std::string again = TempPath("cai_revisions_again.jsonl");
  ASSERT_EQ(RunCli(absl::StrCat("cai-revise --prompts ", prompts, " --constitution ", constitution,
                                " --few-shot ", few_shot, " --rounds 2 --helpful ", helpful,
                                " --helpful-fraction 0.5 --max-new-tokens 12 --seed 4",
                                " --rollout ", rollout_->address(), " --out ", again))
                .exit_code,
            0);
  EXPECT_EQ(ReadLines(again), lines);
  // `rlhf sft` reads it.
  Result sft = RunCli(absl::StrCat("sft --data ", out, " --tokenizer ", Tok(), " --out ",
                                   TempPath("cai_sft"), " --dim 32 --layers 1 --heads 2",
                                   " --max-seq-len 128 --epochs 1 --batch 4 --eval-fraction 0"));
  EXPECT_EQ(sft.exit_code, 0) << sft.err;
  // Bad input: its line named.
  const std::string bad = Write("cai_bad.jsonl", "{\"prompt\": \"ok\"}\n{\"text\": \"no\"}\n");
  Result b = RunCli(absl::StrCat("cai-revise --prompts ", bad, " --constitution ", constitution,
                                 " --rollout ", rollout_->address(), " --out ", TempPath("x")));
  EXPECT_EQ(b.exit_code, 1);
  EXPECT_NE(b.err.find("cai_bad.jsonl:2"), std::string::npos) << b.err;
}

TEST_F(CaiE2eTest, LabelScoresTheOptionsIntoSoftLabelsThatTrainRmReads) {
  ASSERT_TRUE(rollout_ && reference_);
  const std::string prompts = Write("cai_label_prompts.jsonl", kPrompts);
  const std::string principles_path = Write("cai_principles.json", R"([
    {"name": "f0", "question": "Which story is kinder?"},
    {"name": "f1", "question": "Which story is safer?"}])");
  const std::string out = TempPath("cai_labels.jsonl");
  Result r = RunCli(absl::StrCat("cai-label --prompts ", prompts, " --principles ", principles_path,
                                 " --ensemble 2 --max-new-tokens 12", " --rollout ",
                                 rollout_->address(), " --reference ", reference_->address(),
                                 " --tokenizer ", Tok(), " --out ", out));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<json> lines = ReadLines(out);
  ASSERT_EQ(lines.size(), 4u);
  for (const json& l : lines) {
    SCOPED_TRACE(l.dump());
    ASSERT_EQ(l["option_logprobs"].size(), 2u);
    double mean = 0;
    for (const json& o : l["option_logprobs"]) {
      EXPECT_LT(o[0].get<double>(), 0);
      mean += 1 / (1 + std::exp(o[1].get<double>() - o[0].get<double>()));
    }
    EXPECT_NEAR(l["p_a"].get<double>(), mean / 2, 1e-9);  // softmax, averaged over principles
    EXPECT_GT(l["p_a"].get<double>(), 0);
    EXPECT_LT(l["p_a"].get<double>(), 1);
  }
  // The first record's first option, scored by the test itself through LogProbs.
  auto tok = tokenizer::LoadTokenizer(Tok());
  ASSERT_TRUE(tok.ok());
  const json& l0 = lines[0];
  const std::string question =
      l0["principles"][0] == "f0" ? "Which story is kinder?" : "Which story is safer?";
  const cai::FeedbackPrinciple principle{l0["principles"][0], question,
                                         "\n" + question + " Options:"};
  const std::string prompt = cai::FeedbackPrompt("", l0["prompt"], l0["a"], l0["b"], principle);
  std::vector<int> prefix = (*tok)->Encode(prompt);
  std::vector<int> full = (*tok)->Encode(prompt + cai::kOptionA);
  size_t start = 0;
  while (start < prefix.size() && prefix[start] == full[start]) ++start;
  rlhf::v1::LogProbsRequest request;
  auto* seq = request.add_sequences();
  seq->add_tokens((*tok)->bos_id());
  for (int id : full) seq->add_tokens(id);
  seq->set_start(static_cast<int>(start) + 1);
  rlhf::v1::LogProbsResponse response;
  ::grpc::ClientContext ctx;
  auto stub = rlhf::v1::Reference::NewStub(reference_->channel());
  ASSERT_TRUE(stub->LogProbs(&ctx, request, &response).ok());
  double sum = 0;
  for (float lp : response.results(0).logprobs()) sum += lp;
  EXPECT_NEAR(sum, l0["option_logprobs"][0][0].get<double>(), 1e-4);

  // Chain of thought: a rationale first, labels clamped to [0.4, 0.6].
  const std::string cot = Write(
      "cai_cot.json",
      R"J([{"prompt": "\n\nHuman: Consider this story.\n{}\n (A) [[[The dog was kind.]]]\n (B) [[[The dog bit Tom.]]]\n\nAssistant: Let's think step by step:\n(B) is unkind.\n\nHuman:\nSo the answer is: (A)"}])J");
  const std::string cot_out = TempPath("cai_labels_cot.jsonl");
  Result c = RunCli(absl::StrCat("cai-label --prompts ", prompts, " --principles ", principles_path,
                                 " --cot ", cot, " --max-new-tokens 12", " --rollout ",
                                 rollout_->address(), " --reference ", reference_->address(),
                                 " --tokenizer ", Tok(), " --out ", cot_out));
  ASSERT_EQ(c.exit_code, 0) << c.err;
  for (const json& l : ReadLines(cot_out)) {
    EXPECT_GE(l["p_a"].get<double>(), 0.4) << l.dump();
    EXPECT_LE(l["p_a"].get<double>(), 0.6) << l.dump();
    EXPECT_EQ(l["rationales"].size(), 1u);
  }
  // Both orders: each question asked again with the responses swapped; the swapped answer's
  // log-probs are recorded exchanged back, and p_a averages all of them.
  const std::string pairs = TempPath("cai_label_pairs.jsonl");
  {
    std::ofstream f(pairs);
    for (const json& l : lines)
      f << json{{"prompt", l["prompt"]}, {"a", l["a"]}, {"b", l["b"]}}.dump() << "\n";
  }
  const std::string both_out = TempPath("cai_labels_both.jsonl");
  Result b = RunCli(absl::StrCat("cai-label --prompts ", pairs, " --principles ", principles_path,
                                 " --both-orders --reference ", reference_->address(),
                                 " --tokenizer ", Tok(), " --out ", both_out));
  ASSERT_EQ(b.exit_code, 0) << b.err;
  for (const json& l : ReadLines(both_out)) {
    SCOPED_TRACE(l.dump());
    ASSERT_EQ(l["option_logprobs"].size(), 2u);
    ASSERT_EQ(l["principles"][0], l["principles"][1]);  // one question, two orders
    const std::string q =
        l["principles"][0] == "f0" ? "Which story is kinder?" : "Which story is safer?";
    const cai::FeedbackPrinciple fp{l["principles"][0], q, "\n" + q + " Options:"};
    // The second entry is the swapped prompt's (B, A) scores, i.e. log p(" (B)") there is a's.
    const std::string swapped = cai::FeedbackPrompt("", l["prompt"], l["b"], l["a"], fp);
    std::vector<int> pre = (*tok)->Encode(swapped), opt = (*tok)->Encode(swapped + cai::kOptionB);
    size_t k = 0;
    while (k < pre.size() && pre[k] == opt[k]) ++k;
    rlhf::v1::LogProbsRequest req;
    auto* sq = req.add_sequences();
    sq->add_tokens((*tok)->bos_id());
    for (int id : opt) sq->add_tokens(id);
    sq->set_start(static_cast<int>(k) + 1);
    rlhf::v1::LogProbsResponse resp;
    ::grpc::ClientContext c2;
    ASSERT_TRUE(stub->LogProbs(&c2, req, &resp).ok());
    double a_swapped = 0;
    for (float lp : resp.results(0).logprobs()) a_swapped += lp;
    EXPECT_NEAR(l["option_logprobs"][1][0].get<double>(), a_swapped, 1e-4);
    double mean = 0;
    for (const json& o : l["option_logprobs"]) {
      mean += 1 / (1 + std::exp(o[1].get<double>() - o[0].get<double>()));
    }
    EXPECT_NEAR(l["p_a"].get<double>(), mean / 2, 1e-9);
  }
  // `rlhf train-rm` reads the soft labels.
  Result rm = RunCli(absl::StrCat("train-rm --train ", out, " --tokenizer ", Tok(), " --out ",
                                  TempPath("cai_rm"), " --dim 32 --layers 1 --heads 2",
                                  " --max-seq-len 256 --epochs 1 --batch 2 --micro-batch 2"));
  EXPECT_EQ(rm.exit_code, 0) << rm.err;
  EXPECT_NE(rm.err.find("4 pairs"), std::string::npos) << rm.err;
}

}  // namespace
}  // namespace rlhf
