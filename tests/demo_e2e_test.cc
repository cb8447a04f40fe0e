// `rlhf demo --quick` end to end: the real binary builds the world, pretrains, and runs every
// stage through separate service processes; the table and the report have the promised shape;
// a rerun reuses every finished stage.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "tests/cli_runner.h"

namespace rlhf {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const char* const kStages[] = {"base (pretrained)", "SFT",    "RLHF (helpful)",
                               "RLHF-HH",           "SL-CAI", "RL-CAI"};
const char* const kGold[] = {
    "help_benign",           "help_borderline", "harmless",          "evasive_harmful",
    "terse_refusal_harmful", "refuse_benign",   "refuse_borderline", "evasive_all"};

bool NonEmptyFile(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec) && fs::file_size(p, ec) > 0;
}

TEST(DemoE2eTest, QuickRunThroughServicesThenReuse) {
  const std::string out = TempPath("demo");
  fs::remove_all(out);
  Result r = RunCli(absl::StrCat("demo --quick --out ", out));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;

  // The table: a header and one row per stage, each with 8 cells.
  for (const char* stage : kStages) EXPECT_TRUE(absl::StrContains(r.out, stage)) << r.out;
  int rows = 0;
  for (absl::string_view line : absl::StrSplit(r.out, '\n')) {
    for (const char* stage : kStages) {
      if (absl::StartsWith(line, absl::StrCat(stage, " "))) {
        ++rows;
        EXPECT_EQ(std::count(line.begin(), line.end(), '|'), 8) << line;
      }
    }
  }
  EXPECT_EQ(rows, 6) << r.out;

  // The report.
  std::ifstream in(out + "/report/report.json");
  json report = json::parse(in, nullptr, false);
  ASSERT_FALSE(report.is_discarded());
  ASSERT_EQ(report["stages"].size(), 6u);
  const int rl_steps = report["settings"]["rl_steps"];
  for (const json& s : report["stages"]) {
    const json& gold = s["eval"]["gold"];
    for (const char* k : kGold) {
      ASSERT_TRUE(gold.contains(k)) << s["stage"] << " " << k;
      const double m = gold[k]["mean"];
      EXPECT_GE(m, 0.0);
      EXPECT_LE(m, 1.0);
    }
    EXPECT_EQ(gold["harmless"]["n"], 24) << s["stage"];  // the held-out harmful prompts
    const std::string stage = s["stage"];
    const bool rl = stage == "rlhf_help" || stage == "rlhf_hh" || stage == "rl_cai";
    EXPECT_EQ(s["eval"].contains("rm_score"), rl) << stage;
    EXPECT_EQ(s["eval"].contains("kl"), stage != "base") << stage;
    if (rl) {
      ASSERT_TRUE(s.contains("rl_steps")) << stage;
      EXPECT_EQ(static_cast<int>(s["rl_steps"].size()), rl_steps) << stage;
    }
  }
  std::ifstream html_in(out + "/report/index.html");
  const std::string html((std::istreambuf_iterator<char>(html_in)), {});
  EXPECT_TRUE(absl::StrContains(html, "<svg")) << "no charts";
  EXPECT_FALSE(absl::StrContains(html, "src=\"http")) << "the page must work offline";
  EXPECT_FALSE(absl::StrContains(html, "<script src")) << "the page must work offline";

  // Every stage ran as its own processes: jobs and services each left their own log.
  for (const char* rl : {"rlhf_help", "rlhf_hh", "rl_cai"}) {
    const fs::path run = fs::path(out) / rl / "run";
    for (const char* log : {"learner.log", "reward.log", "reference.log", "rollout-0.log"}) {
      EXPECT_TRUE(NonEmptyFile(run / log)) << (run / log);
    }
  }
  EXPECT_TRUE(NonEmptyFile(fs::path(out) / "base" / "pretrain.log"));
  EXPECT_TRUE(NonEmptyFile(fs::path(out) / "rm_help" / "train-rm.log"));
  EXPECT_TRUE(NonEmptyFile(fs::path(out) / "sl_cai" / "rollout.log"));
  EXPECT_TRUE(NonEmptyFile(fs::path(out) / "sl_cai" / "cai-revise.log"));
  for (const char* log :
       {"rollout.log", "reference.log", "cai-label-policy.log", "cai-label-redteam.log"}) {
    EXPECT_TRUE(NonEmptyFile(fs::path(out) / "rl_cai_labels" / log)) << log;
  }
  for (const char* e :
       {"eval_base", "eval_sft", "eval_rlhf_help", "eval_rlhf_hh", "eval_sl_cai", "eval_rl_cai"}) {
    EXPECT_TRUE(NonEmptyFile(fs::path(out) / e / "rollout.log")) << e;
  }
  EXPECT_TRUE(NonEmptyFile(fs::path(out) / "eval_rl_cai" / "reward.log"));
  EXPECT_TRUE(NonEmptyFile(fs::path(out) / "eval_rl_cai" / "reference.log"));

  // A rerun reuses every finished stage and prints the same table.
  Result again = RunCli(absl::StrCat("demo --quick --out ", out));
  ASSERT_EQ(again.exit_code, 0) << again.out << again.err;
  int reused = 0;
  for (absl::string_view line : absl::StrSplit(again.out, '\n')) {
    reused += absl::StrContains(line, "reused");
  }
  EXPECT_GE(reused, 16) << again.out;  // 10 training stages + 6 evaluations
  const size_t table = r.out.find("base (pretrained)");
  const size_t table_again = again.out.find("base (pretrained)");
  ASSERT_NE(table, std::string::npos);
  ASSERT_NE(table_again, std::string::npos);
  EXPECT_EQ(r.out.substr(table, r.out.find("rlhf demo: report") - table),
            again.out.substr(table_again, again.out.find("rlhf demo: report") - table_again));
}

}  // namespace
}  // namespace rlhf
