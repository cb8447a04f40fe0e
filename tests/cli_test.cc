// Runs the real `rlhf` binary as a user would: help, flag errors, bad files, and generation on
// the stories260K fixture (text and JSONL, single and batched prompts).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/testing/shared_data.h"
#include "tests/cli_runner.h"

namespace rlhf {
namespace {

std::string ModelArgs() {
  return absl::StrCat("--model ", testing::SharedPath("models/stories260K.bin"), " --tokenizer ",
                      testing::SharedPath("models/tok512.model"));
}

TEST(CliTest, HelpListsSubcommandsAndFlags) {
  Result top = RunCli("--help");
  EXPECT_EQ(top.exit_code, 0);
  EXPECT_NE(top.out.find("generate"), std::string::npos);
  Result gen = RunCli("generate --help");
  EXPECT_EQ(gen.exit_code, 0);
  for (const char* flag : {"--model", "--tokenizer", "--prompts", "--temperature", "--top-k",
                           "--top-p", "--seed", "--jsonl", "--max-new-tokens"}) {
    EXPECT_NE(gen.out.find(flag), std::string::npos) << flag;
  }
}

TEST(CliTest, UnknownFlagAndBadValuesAreErrors) {
  Result unknown = RunCli(absl::StrCat("generate ", ModelArgs(), " --prompt hi --bogus 3"));
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.err.find("bogus"), std::string::npos) << unknown.err;
  Result bad = RunCli(absl::StrCat("generate ", ModelArgs(), " --prompt hi --temperature -1"));
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("temperature"), std::string::npos) << bad.err;
  Result nan = RunCli(absl::StrCat("generate ", ModelArgs(), " --prompt hi --top-p abc"));
  EXPECT_NE(nan.exit_code, 0);
  EXPECT_NE(nan.err.find("top-p"), std::string::npos) << nan.err;
  Result none = RunCli(absl::StrCat("generate ", ModelArgs()));
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_NE(none.err.find("--prompt"), std::string::npos) << none.err;
}

TEST(CliTest, MissingAndMismatchedFilesNameTheFile) {
  Result missing = RunCli("generate --model /nonexistent/model.bin --tokenizer " +
                          testing::SharedPath("models/tok512.model") + " --prompt hi");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("/nonexistent/model.bin"), std::string::npos) << missing.err;
  Result mismatch =
      RunCli("generate --model " + testing::SharedPath("models/stories260K.bin") + " --tokenizer " +
             testing::SharedPath("models/tokenizer.model") + " --prompt hi");
  EXPECT_EQ(mismatch.exit_code, 1);
  EXPECT_NE(mismatch.err.find("vocab_size"), std::string::npos) << mismatch.err;
  const std::string prompts = TempPath("bad.jsonl");
  std::ofstream(prompts) << "{\"prompt\": \"ok\"}\n{\"text\": 1}\n";
  Result bad_line = RunCli(absl::StrCat("generate ", ModelArgs(), " --prompts ", prompts));
  EXPECT_EQ(bad_line.exit_code, 1);
  EXPECT_NE(bad_line.err.find(prompts + ":2"), std::string::npos) << bad_line.err;
}

TEST(CliTest, JsonlGenerationIsReproducibleAndBatchIndependent) {
  const std::string flags = " --temperature 0.8 --seed 5 --max-new-tokens 24 --jsonl";
  Result single = RunCli(absl::StrCat("generate ", ModelArgs(), flags, " --prompt 'Once upon'"));
  ASSERT_EQ(single.exit_code, 0) << single.err;
  auto one = nlohmann::json::parse(single.out);
  EXPECT_EQ(one["tokens"].size(), one["logprobs"].size());
  EXPECT_GE(one["tokens"].size(), 1u);
  EXPECT_LE(one["tokens"].size(), 24u);
  EXPECT_EQ(one["prompt_tokens"][0], 1);  // BOS
  for (double lp : one["logprobs"]) EXPECT_LE(lp, 0.0);
  // The same prompt first in a batch with a longer one: identical tokens.
  const std::string prompts = TempPath("prompts.jsonl");
  std::ofstream(prompts) << "{\"prompt\": \"Once upon\"}\n\n"
                         << "{\"prompt\": \"a much longer prompt than the first one\"}\n";
  Result batch = RunCli(absl::StrCat("generate ", ModelArgs(), flags, " --prompts ", prompts));
  ASSERT_EQ(batch.exit_code, 0) << batch.err;
  std::vector<std::string> lines = absl::StrSplit(batch.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(nlohmann::json::parse(lines[0])["tokens"], one["tokens"]);
  EXPECT_NE(batch.err.find("BLAS"), std::string::npos);  // every process logs its BLAS
}

TEST(CliTest, TextOutputStartsWithThePrompt) {
  Result r = RunCli(absl::StrCat("generate ", ModelArgs(), " --temperature 0 --max-new-tokens 8 ",
                                 "--prompt 'Hello'"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("Hello", 0), 0u) << r.out;
}

// A config file named `name` (the extension picks YAML or JSON) holding `text`.
std::string WriteTempConfig(const std::string& name, const std::string& text) {
  const std::string path = TempPath(name);
  std::ofstream(path) << text;
  return path;
}

TEST(CliTest, CheckConfigAcceptsValidFilesAndNamesTheProblemInBadOnes) {
  const std::string good =
      WriteTempConfig("learner.yaml",
                      "server: {listen_address: '0.0.0.0:50051', metrics_port: 9090}\n"
                      "policy: /models/policy\nppo: {batch_size: 16}\n");
  Result ok = RunCli("check-config --service learner " + good);
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_NE(ok.out.find("ok (rlhf.v1.LearnerConfig)"), std::string::npos) << ok.out;
  Result printed =
      RunCli("check-config --print --service learner " + good + " --set total_steps=7");
  ASSERT_EQ(printed.exit_code, 0) << printed.err;
  EXPECT_EQ(nlohmann::json::parse(printed.out)["total_steps"], 7) << printed.out;

  const std::string typo = WriteTempConfig("learner.yaml", "server:\n  listen_adress: x\n");
  Result unknown = RunCli("check-config --service learner " + typo);
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("did you mean 'listen_address'"), std::string::npos) << unknown.err;
  EXPECT_NE(unknown.err.find("line 2"), std::string::npos) << unknown.err;

  // The reward service's own checks, without loading anything: one of model / rules, and
  // rules it can build.
  const std::string both =
      WriteTempConfig("reward.yaml", "model: /models/rm\nrules: [{kind: TEXT_SHARE, word: ver}]\n");
  Result two = RunCli("check-config --service reward " + both);
  EXPECT_EQ(two.exit_code, 1);
  EXPECT_NE(two.err.find("exactly one of 'model' and 'rules'"), std::string::npos) << two.err;
  const std::string regex =
      WriteTempConfig("reward.yaml", "rules: [{kind: REGEX_MATCH, pattern: '(('}]\n");
  EXPECT_EQ(RunCli("check-config --service reward " + regex).exit_code, 1);

  // The learner's advantage checks: RLOO needs groups that divide the batch, and no critic.
  const std::string learner =
      WriteTempConfig("learner_groups.yaml", "policy: /models/policy\nppo: {batch_size: 16}\n");
  EXPECT_EQ(RunCli("check-config --service learner " + learner +
                   " --set ppo.advantage=RLOO --set ppo.group_size=4")
                .exit_code,
            0);
  Result no_group =
      RunCli("check-config --service learner " + learner + " --set ppo.advantage=GRPO");
  EXPECT_EQ(no_group.exit_code, 1);
  EXPECT_NE(no_group.err.find("ppo.group_size >= 2"), std::string::npos) << no_group.err;
  Result split = RunCli("check-config --service learner " + learner +
                        " --set ppo.advantage=RLOO --set ppo.group_size=3");
  EXPECT_EQ(split.exit_code, 1);
  EXPECT_NE(split.err.find("multiple of ppo.group_size"), std::string::npos) << split.err;

  Result wrong_service = RunCli("check-config --service critic " + good);
  EXPECT_NE(wrong_service.exit_code, 0);
  EXPECT_NE(wrong_service.err.find("critic"), std::string::npos) << wrong_service.err;
}

}  // namespace
}  // namespace rlhf
