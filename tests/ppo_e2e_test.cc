// The PPO loop end to end, every service a separate process on loopback, on the stories260K
// fixture from ../shared/models with a verifiable rule reward.
//
//  1. `rlhf local` (the launcher users run): the mean reward rises clearly over a seeded short
//     run while the KL to the reference stays bounded.
//  2. A rollout worker SIGKILLed mid-run and replaced: the run finishes and the ledgers balance.
//  3. Chaos (workers killed at random, added, removed) with an exact per-id ledger, and two
//     learner ranks under `rlhf local`.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/launch/service_process.h"
#include "common/process/subprocess.h"
#include "common/testing/shared_data.h"

namespace rlhf {
namespace {

namespace fs = std::filesystem;

std::string Model() { return testing::SharedPath("models/stories260K.bin"); }
std::string Tokenizer() { return testing::SharedPath("models/tok512.model"); }

std::string TempDir(const std::string& name) {
  const std::string dir = absl::StrCat(::testing::TempDir(), "/ppo_e2e_", getpid(), "_", name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// Prompts shaped like the stories the fixture was trained on.
std::string WritePrompts(const std::string& dir) {
  const std::string path = dir + "/prompts.jsonl";
  std::ofstream out(path);
  const char* starts[] = {"Once upon a time", "Tom",     "The dog",    "She said", "Lily",
                          "One day",          "The sun", "Ben and Mia"};
  for (int i = 0; i < 32; ++i) out << nlohmann::json{{"prompt", starts[i % 8]}}.dump() << "\n";
  return path;
}

// The learner / rollout / reward / reference sections shared by both tests. The reward is the
// share of the response text made of "ver", which the fixture emits in ~4% of its text at
// temperature 1; scaled by 10 so that it is not drowned by the KL penalty.
nlohmann::json Sections(const std::string& dir, int total_steps) {
  return {{"learner",
           {{"policy", Model()},
            {"tokenizer", Tokenizer()},
            {"prompts", WritePrompts(dir)},
            {"total_steps", total_steps},
            {"lease_seconds", 5},
            {"max_queue", 32},
            {"threads", 1},
            {"seed", 7},
            {"sampling", {{"temperature", 1.0}, {"max_new_tokens", 24}}},
            {"ppo",
             {{"batch_size", 16},
              {"minibatch_size", 8},
              {"epochs", 2},
              {"learning_rate", 1e-4},
              {"critic_learning_rate", 1e-3},
              {"init_kl_coef", 0.1},
              {"kl_target", 4},
              {"kl_horizon", 320},
              {"seed", 7}}}}},
          {"rollout",
           {{"server", {{"shutdown_grace_seconds", 1}}},
            {"model", Model()},
            {"tokenizer", Tokenizer()},
            {"threads", 1},
            {"worker", {{"batch_prompts", 8}}}}},
          {"reward",
           {{"server", {{"shutdown_grace_seconds", 1}}},
            {"threads", 1},
            {"rules", {{{"kind", "TEXT_SHARE"}, {"word", "ver"}, {"weight", 10}}}}}},
          {"reference",
           {{"server", {{"shutdown_grace_seconds", 1}}}, {"model", Model()}, {"threads", 1}}}};
}

std::vector<nlohmann::json> ReadEvents(const std::string& path, const std::string& kind) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.value("event", "") == kind) out.push_back(j);
  }
  return out;
}

// The learner's ledger identities (services/learner/trajectory_queue.h, prompt_pool.h).
void ExpectLedgerBalances(const nlohmann::json& l, int consumed) {
  SCOPED_TRACE(l.dump());
  EXPECT_EQ(l["received"].get<int>(), l["accepted"].get<int>() + l["duplicate"].get<int>() +
                                          l["invalid"].get<int>() +
                                          l["stale_on_arrival"].get<int>() +
                                          l["parked"].get<int>() + l["cancelled"].get<int>());
  EXPECT_EQ(l["accepted"].get<int>(),
            l["consumed"].get<int>() + l["stale_at_pop"].get<int>() + l["queued"].get<int>());
  EXPECT_EQ(l["consumed"].get<int>(), consumed);
  EXPECT_EQ(l["invalid"].get<int>(), 0);
  EXPECT_EQ(l["prompts_leased"].get<int>(),
            l["prompts_completed"].get<int>() + l["prompts_returned"].get<int>() +
                l["prompts_expired"].get<int>() + l["prompts_outstanding"].get<int>());
}

double Mean(const std::vector<nlohmann::json>& steps, size_t begin, size_t end, const char* key) {
  double sum = 0;
  for (size_t i = begin; i < end; ++i) sum += steps[i][key].get<double>();
  return sum / static_cast<double>(end - begin);
}

TEST(PpoE2eTest, LocalRunRaisesTheRewardWithBoundedKl) {
  const std::string dir = TempDir("local");
  const int steps = 40;
  nlohmann::json config = Sections(dir, steps);
  config["run_dir"] = dir + "/run";
  config["rollout_workers"] = 2;
  const std::string config_path = dir + "/local.json";
  std::ofstream(config_path) << config.dump(2);

  auto launcher = process::Subprocess::Start({RLHF_CLI_PATH, "local", "--config", config_path},
                                             {dir + "/launcher.log"});
  ASSERT_TRUE(launcher.ok()) << launcher.status();
  std::string output;
  while (true) {
    auto line = (*launcher)->ReadLine(absl::Minutes(5));
    if (!line.ok()) break;
    output += *line + "\n";
  }
  auto code = (*launcher)->Wait(absl::Seconds(60));
  ASSERT_TRUE(code.ok());
  ASSERT_EQ(*code, 0) << output << launch::TailOfFile(dir + "/launcher.log", 40);
  EXPECT_NE(output.find("step 40/40"), std::string::npos) << output;

  auto events = ReadEvents(dir + "/run/steps.jsonl", "step");
  ASSERT_EQ(events.size(), static_cast<size_t>(steps));
  const double first = Mean(events, 0, 5, "reward_mean");
  const double last = Mean(events, steps - 5, steps, "reward_mean");
  // Thresholds. The fixture writes "ver" in ~4% of its text at temperature 1 (reward ~0.4 =
  // 10 x 4%); in the seeded runs we measured, the last 5 steps average 1.2-1.3 (3x). Asking for
  // 1.8x and +0.3 leaves room for the run-to-run noise of two workers racing for leases (a
  // batch mean of 16 samples varies by ~0.15 at the start) and still fails a loop that does not
  // learn.
  EXPECT_GT(last, first * 1.8) << "first " << first << " last " << last;
  EXPECT_GT(last, first + 0.3) << "first " << first << " last " << last;
  // KL bounded: the adaptive controller (target 4 nats per sequence) raises the coefficient
  // when the KL overshoots, and the per-sequence KL stays below 40 nats over 24 tokens
  // (measured peaks ~24): under 1.7 nats per token against the fixture's ~2.9 nats of entropy
  // per token, i.e. the policy still samples mostly what the reference would.
  double max_kl = 0;
  for (const auto& e : events) max_kl = std::max(max_kl, e["kl_mean"].get<double>());
  EXPECT_LT(max_kl, 40.0);
  EXPECT_GT(events.back()["kl_coef"].get<double>(), 0.1) << "the controller reacted";
  ExpectLedgerBalances(ReadEvents(dir + "/run/steps.jsonl", "done").at(0)["ledger"], steps * 16);
  // Every process wrote its log, and the final checkpoint is an HF directory.
  for (const char* name : {"learner", "reward", "reference", "rollout-0", "rollout-1"}) {
    EXPECT_TRUE(fs::exists(absl::StrCat(dir, "/run/", name, ".log"))) << name;
  }
  EXPECT_TRUE(fs::exists(dir + "/run/checkpoints/step-00000040/policy/model.safetensors"));
}

// Runs `rlhf local` on `config` until it exits, handing each stdout line to `on_line` (which
// may signal the launcher); returns its exit code and stdout + the tail of its stderr.
std::pair<int, std::string> RunLocal(
    const std::string& dir, const nlohmann::json& config,
    const std::function<void(const std::string& line, process::Subprocess& launcher)>& on_line =
        nullptr) {
  const std::string config_path = dir + "/local.json";
  std::ofstream(config_path) << config.dump(2);
  auto launcher = process::Subprocess::Start({RLHF_CLI_PATH, "local", "--config", config_path},
                                             {dir + "/launcher.log"});
  EXPECT_TRUE(launcher.ok()) << launcher.status();
  if (!launcher.ok()) return {-1, ""};
  std::string output;
  while (true) {
    auto line = (*launcher)->ReadLine(absl::Minutes(5));
    if (!line.ok()) break;
    output += *line + "\n";
    if (on_line) on_line(*line, **launcher);
  }
  auto code = (*launcher)->Wait(absl::Seconds(60));
  EXPECT_TRUE(code.ok());
  return {code.ok() ? *code : -1, output + launch::TailOfFile(dir + "/launcher.log", 60)};
}

TEST(PpoE2eTest, LocalRunFailsCleanlyWhenAProcessCannotStart) {
  const std::string dir = TempDir("bad_child");
  nlohmann::json config = Sections(dir, 5);
  config["run_dir"] = dir + "/run";
  std::ofstream(dir + "/bad_prompts.jsonl") << "{\"prompt\": \"ok\"}\nnot json\n";
  config["learner"]["prompts"] = dir + "/bad_prompts.jsonl";
  auto [code, output] = RunLocal(dir, config);
  EXPECT_EQ(code, 1) << output;
  EXPECT_NE(output.find("learner did not start"), std::string::npos) << output;
  EXPECT_NE(output.find("bad_prompts.jsonl:2"), std::string::npos) << output;
}

int ChildPid(const std::string& launcher_log, const std::string& name);

// A second Ctrl-C does not wait for the learner's step: the learner is SIGSTOPped so that the
// graceful stop the first one asked for cannot finish, and is let go after the second.
TEST(PpoE2eTest, LocalRunStopsEveryProcessOnASecondSigint) {
  const std::string dir = TempDir("sigint2");
  nlohmann::json config = Sections(dir, 1000);
  config["run_dir"] = dir + "/run";
  const std::string log = dir + "/launcher.log";
  int learner = -1;
  auto [code, output] = RunLocal(dir, config, [&](const std::string& line, auto& launcher) {
    if (learner < 0 && line.rfind("step 1/", 0) == 0) {
      learner = ChildPid(log, "learner");
      ASSERT_GT(learner, 0);
      ASSERT_EQ(kill(learner, SIGSTOP), 0);
      launcher.Signal(SIGINT);
    } else if (learner > 0 && line.find("the learner stops after its current step") !=
                                  std::string::npos) {
      launcher.Signal(SIGINT);
      kill(learner, SIGCONT);
    }
  });
  EXPECT_EQ(code, 1) << output;
  EXPECT_NE(output.find("interrupted by signal 2"), std::string::npos) << output;
  // The learner checkpointed on its way out (SIGTERM from the launcher).
  EXPECT_TRUE(fs::exists(dir + "/run/checkpoints/latest")) << output;
}

// The pid `rlhf local` last reported for child `name` in its log ("<name> serving on ... (pid
// N,"; the log is appended to by every run in the same directory).
int ChildPid(const std::string& launcher_log, const std::string& name) {
  std::ifstream in(launcher_log);
  int pid = -1;
  for (std::string line; std::getline(in, line);) {
    if (line.find("rlhf local: " + name + " ") == std::string::npos) continue;
    const size_t at = line.find("(pid ");
    if (at != std::string::npos) pid = std::stoi(line.substr(at + 5));
  }
  return pid;
}

// The run's report (run_dir/report.json): the per-id ledger balances, every batch was consumed
// once, and the learner's own counters agree with it.
nlohmann::json ExpectReportBalances(const std::string& run_dir, int steps) {
  std::ifstream in(run_dir + "/report.json");
  const nlohmann::json report = nlohmann::json::parse(in, nullptr, false);
  EXPECT_FALSE(report.is_discarded()) << run_dir;
  if (report.is_discarded()) return {};
  SCOPED_TRACE(report.dump());
  const nlohmann::json& l = report["ledger"];
  EXPECT_TRUE(l["balanced"].get<bool>());
  EXPECT_EQ(l["consumed"].get<int>(), steps * 16);
  EXPECT_EQ(l["consumed_twice"].get<int>(), 0);
  EXPECT_EQ(l["unknown_ids"].get<int>(), 0);
  EXPECT_EQ(l["generated"].get<int>(), l["consumed"].get<int>() + l["dropped"]["stale"].get<int>() +
                                           l["dropped"]["invalid"].get<int>() +
                                           l["dropped"]["shutdown"].get<int>() +
                                           l["in_flight_at_stop"].get<int>());
  EXPECT_EQ(report["learner"]["consumed"].get<int>(), l["consumed"].get<int>());
  EXPECT_EQ(report["learner"]["duplicate"].get<int>(), l["duplicates_received"].get<int>());
  EXPECT_EQ(report["steps"].get<int>(), steps);
  return report;
}

// Chaos: 3 workers; every 7 steps (and at least 1 s apart: every few seconds here) a random live
// worker is SIGKILLed (and replaced by the launcher); one worker is added (SIGUSR1) and one
// removed gracefully (SIGUSR2); the reward service is SIGKILLed once and the reference service
// once (each restarted on its own address by the launcher). The run reaches its step count, and
// its ledger balances per trajectory id.
TEST(PpoE2eTest, ChaosRunWithKilledAddedAndRemovedWorkersKeepsAnExactLedger) {
  const std::string dir = TempDir("chaos");
  const int steps = 50;
  nlohmann::json config = Sections(dir, steps);
  config["run_dir"] = dir + "/run";
  config["rollout_workers"] = 3;
  const std::string log = dir + "/launcher.log";
  std::mt19937 rng(2026);
  std::vector<std::string> live = {"rollout-0", "rollout-1", "rollout-2"};
  auto forget = [&](const std::string& name) {
    live.erase(std::remove(live.begin(), live.end(), name), live.end());
  };
  // The worker name after `marker` in `line` ("rollout-N").
  auto name_after = [](const std::string& line, const std::string& marker) {
    const size_t at = line.find(marker);
    if (at == std::string::npos) return std::string();
    const size_t begin = at + marker.size();
    return line.substr(begin, line.find_first_of(" ;)", begin) - begin);
  };
  int kills = 0;
  bool added = false, removed = false;
  bool reward_killed = false, reference_killed = false;
  int step = 0;
  int next_kill_step = 6;
  absl::Time last_kill = absl::InfinitePast();
  auto [code, output] = RunLocal(dir, config, [&](const std::string& line, auto& launcher) {
    if (auto n = name_after(line, "rlhf local: added "); !n.empty()) live.push_back(n);
    if (auto n = name_after(line, "replaced by "); !n.empty()) live.push_back(n);
    if (auto n = name_after(line, "rlhf local: removed "); !n.empty()) {
      forget(n);
      removed = true;
    }
    if (line.rfind("step ", 0) == 0) step = std::stoi(line.substr(5));
    if (step < 3 || step > steps - 8) return;
    if (!added) {
      launcher.Signal(SIGUSR1);
      added = true;
    } else if (step >= 20 && !reward_killed) {
      const int pid = ChildPid(log, "reward");
      reward_killed = pid > 0 && kill(pid, SIGKILL) == 0;
    } else if (step >= 30 && !reference_killed) {
      const int pid = ChildPid(log, "reference");
      reference_killed = pid > 0 && kill(pid, SIGKILL) == 0;
    } else if (kills == 2 && !removed) {
      launcher.Signal(SIGUSR2);
      removed = true;  // a second SIGUSR2 would remove another one
    } else if (step >= next_kill_step && absl::Now() - last_kill > absl::Seconds(1) &&
               !live.empty()) {
      next_kill_step = step + 7;
      const std::string victim = live[rng() % live.size()];
      const int pid = ChildPid(log, victim);
      if (pid > 0 && kill(pid, SIGKILL) == 0) {
        forget(victim);
        ++kills;
        last_kill = absl::Now();
      }
    }
  });
  ASSERT_EQ(code, 0) << output;
  EXPECT_GE(kills, 3) << output;
  EXPECT_TRUE(reward_killed && reference_killed) << output;
  EXPECT_NE(output.find("rlhf local: reward exited with 137; restarted as reward-"),
            std::string::npos)
      << output;
  EXPECT_NE(output.find("rlhf local: reference exited with 137; restarted as reference-"),
            std::string::npos)
      << output;
  EXPECT_NE(output.find("added rollout-3 (4 workers)"), std::string::npos) << output;
  EXPECT_NE(output.find("(exit 0; "), std::string::npos) << "graceful removal\n" << output;
  EXPECT_NE(output.find(absl::StrCat("step ", steps, "/", steps)), std::string::npos) << output;
  EXPECT_NE(output.find("balanced"), std::string::npos) << output;
  ExpectLedgerBalances(ReadEvents(dir + "/run/steps.jsonl", "done").at(0)["ledger"], steps * 16);
  const nlohmann::json report = ExpectReportBalances(dir + "/run", steps);
  // Killed workers took unpushed trajectories with them, and their unacked ones were resent.
  EXPECT_GE(report["workers_started"].get<int>(), 4 + kills) << output;
}

// Ctrl-C: the first SIGINT to the launcher stops the learner after its current step, with a
// checkpoint; the run then reconciles its ledger as at the end and exits 0.
TEST(PpoE2eTest, InterruptedLocalRunStopsGracefullyWithABalancedLedger) {
  const std::string dir = TempDir("sigint");
  nlohmann::json config = Sections(dir, 500);
  config["run_dir"] = dir + "/run";
  config["rollout_workers"] = 2;
  bool sent = false;
  auto [code, output] = RunLocal(dir, config, [&](const std::string& line, auto& launcher) {
    if (!sent && line.rfind("step 4/", 0) == 0) {
      launcher.Signal(SIGINT);
      sent = true;
    }
  });
  ASSERT_EQ(code, 0) << output;
  EXPECT_NE(output.find("the learner stops after its current step"), std::string::npos) << output;
  EXPECT_NE(output.find("rlhf local: the learner stopped at step "), std::string::npos) << output;
  std::ifstream in(dir + "/run/report.json");
  const nlohmann::json report = nlohmann::json::parse(in, nullptr, false);
  ASSERT_FALSE(report.is_discarded());
  const int steps = report["steps"].get<int>();
  EXPECT_GE(steps, 4);
  EXPECT_LT(steps, 500);
  EXPECT_TRUE(report["ledger"]["balanced"].get<bool>()) << report.dump();
  EXPECT_EQ(report["ledger"]["consumed"].get<int>(), steps * 16) << report.dump();
  EXPECT_EQ(report["ledger"]["consumed_twice"].get<int>(), 0);
  EXPECT_TRUE(fs::exists(absl::StrFormat("%s/run/checkpoints/step-%08d", dir, steps)));
}

// Critic-free RLOO under `rlhf local`: every prompt is leased as 4 copies and trained on as one
// group (the trainer refuses any batch that is not whole groups), no critic is trained or
// checkpointed, and the per-id ledger balances.
TEST(PpoE2eTest, LocalRunWithRlooGroups) {
  const std::string dir = TempDir("rloo");
  const int steps = 4;
  nlohmann::json config = Sections(dir, steps);
  config["run_dir"] = dir + "/run";
  config["rollout_workers"] = 2;
  config["learner"]["ppo"]["advantage"] = "RLOO";
  config["learner"]["ppo"]["group_size"] = 4;
  auto [code, output] = RunLocal(dir, config);
  ASSERT_EQ(code, 0) << output;
  EXPECT_NE(output.find(absl::StrCat("step ", steps, "/", steps)), std::string::npos) << output;
  ExpectReportBalances(dir + "/run", steps);
  ExpectLedgerBalances(ReadEvents(dir + "/run/steps.jsonl", "done").at(0)["ledger"], steps * 16);
  const std::vector<nlohmann::json> events = ReadEvents(dir + "/run/steps.jsonl", "step");
  ASSERT_EQ(events.size(), static_cast<size_t>(steps));
  for (const nlohmann::json& e : events) {
    EXPECT_EQ(e["trajectories"].get<int>(), 16);
    EXPECT_EQ(e["value_loss"].get<double>(), 0.0);
    EXPECT_TRUE(std::isfinite(e["policy_loss"].get<double>()));
  }
  const std::string last = absl::StrFormat("%s/run/checkpoints/step-%08d", dir, steps);
  EXPECT_TRUE(fs::exists(last + "/policy")) << last;
  EXPECT_FALSE(fs::exists(last + "/critic")) << last;
}

// Two learner ranks (data-parallel over Gloo on loopback) under `rlhf local`: rank 0 serves the
// workers and broadcasts each batch, rank 1 trains its half of it, both stop together.
TEST(PpoE2eTest, LocalRunWithTwoLearnerRanks) {
  const std::string dir = TempDir("ranks");
  const int steps = 12;
  nlohmann::json config = Sections(dir, steps);
  config["run_dir"] = dir + "/run";
  config["rollout_workers"] = 2;
  config["learner_ranks"] = 2;
  auto [code, output] = RunLocal(dir, config);
  ASSERT_EQ(code, 0) << output;
  EXPECT_NE(output.find("2 learner rank(s)"), std::string::npos) << output;
  EXPECT_NE(output.find(absl::StrCat("step ", steps, "/", steps)), std::string::npos) << output;
  ExpectReportBalances(dir + "/run", steps);
  const std::string rank1 = launch::TailOfFile(dir + "/run/learner-rank-1.log", 400);
  EXPECT_NE(rank1.find("joined (gloo)"), std::string::npos) << rank1;
  EXPECT_NE(rank1.find(absl::StrCat("stopped by rank 0 at step ", steps)), std::string::npos)
      << rank1;
  ASSERT_EQ(ReadEvents(dir + "/run/steps.jsonl", "step").size(), static_cast<size_t>(steps));

  // Losing a rank: the same run continued to 40 steps, rank 1 SIGKILLed at step 18. The run fails
  // at once (no hang), and a rerun resumes from the last checkpoint and finishes, its ledger
  // (across both attempts) exact.
  config["learner"]["total_steps"] = 40;
  config["learner"]["checkpoint_every"] = 2;
  config["learner"]["keep_checkpoints"] = 3;
  const std::string log = dir + "/launcher.log";
  const absl::Time start = absl::Now();
  absl::Time killed = absl::InfiniteFuture();
  auto [lost_code, lost] = RunLocal(dir, config, [&](const std::string& line, auto&) {
    if (killed == absl::InfiniteFuture() && line.rfind("step 18/", 0) == 0) {
      const int pid = ChildPid(log, "learner-rank-1");
      ASSERT_GT(pid, 0) << launch::TailOfFile(log, 40);
      ASSERT_EQ(kill(pid, SIGKILL), 0);
      killed = absl::Now();
    }
  });
  EXPECT_EQ(lost_code, 1) << lost;
  EXPECT_LT(absl::Now() - killed, absl::Seconds(30)) << "failed within the timeout, not hung";
  EXPECT_NE(lost.find("learner-rank-1 exited with status 137"), std::string::npos) << lost;
  EXPECT_LT(absl::Now() - start, absl::Minutes(3));
  auto [code2, resumed] = RunLocal(dir, config);
  ASSERT_EQ(code2, 0) << resumed;
  EXPECT_NE(resumed.find("step 40/40"), std::string::npos) << resumed;
  EXPECT_NE(launch::TailOfFile(dir + "/run/learner.log", 400).find("resumed from"),
            std::string::npos);
  const nlohmann::json report = ExpectReportBalances(dir + "/run", 40);
  EXPECT_EQ(report["ledger"]["learner_restarts"].get<int>(), 2);
  // keep_checkpoints: 3: the newest three are left, the one `latest` names among them.
  std::vector<std::string> kept;
  for (const auto& entry : fs::directory_iterator(dir + "/run/checkpoints")) {
    if (entry.path().filename().string().rfind("step-", 0) == 0) {
      kept.push_back(entry.path().filename().string());
    }
  }
  std::sort(kept.begin(), kept.end());
  EXPECT_EQ(kept, (std::vector<std::string>{"step-00000036", "step-00000038", "step-00000040"}));
}

// Sums the samples of metric `name` in a Prometheus text exposition.
double MetricSum(const std::string& text, const std::string& name) {
  double sum = 0;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name, 0) != 0) continue;
    const char next = line[name.size()];
    if (next != ' ' && next != '{') continue;
    sum += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return sum;
}

TEST(PpoE2eTest, AKilledWorkerIsReplacedAndTheLedgersBalance) {
  const std::string dir = TempDir("kill");
  // Long enough (~15 s) for the replacement worker to start and contribute.
  const int steps = 30;
  nlohmann::json sections = Sections(dir, steps);
  auto start = [&](const std::string& name, const std::string& binary, const nlohmann::json& config,
                   const std::string& service, std::vector<std::string> overrides = {}) {
    const std::string config_path = absl::StrCat(dir, "/", name, ".json");
    std::ofstream(config_path) << config.dump();
    launch::ServiceProcessOptions o;
    o.name = name;
    o.binary = binary;
    o.config_path = config_path;
    o.overrides = std::move(overrides);
    o.log_path = absl::StrCat(dir, "/", name, ".log");
    o.health_service = service;
    auto p = launch::ServiceProcess::Start(o);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? std::move(*p) : nullptr;
  };
  auto reward = start("reward", RLHF_REWARD_BIN, sections["reward"], "rlhf.v1.Reward");
  auto reference =
      start("reference", RLHF_REFERENCE_BIN, sections["reference"], "rlhf.v1.Reference");
  nlohmann::json learner_config = sections["learner"];
  learner_config["server"] = {{"shutdown_grace_seconds", 1}};
  auto learner = start("learner", RLHF_LEARNER_BIN, learner_config, "rlhf.v1.Learner");
  ASSERT_TRUE(reward && reference && learner);
  auto worker = [&](int i) {
    return start(
        absl::StrCat("rollout-", i), RLHF_ROLLOUT_BIN, sections["rollout"], "rlhf.v1.Rollout",
        {"worker.learner=" + learner->address(), "worker.reward=" + reward->address(),
         "worker.reference=" + reference->address(), absl::StrCat("worker.worker_id=worker-", i)});
  };
  auto w0 = worker(0);
  auto w1 = worker(1);
  ASSERT_TRUE(w0 && w1);

  std::vector<nlohmann::json> events;
  auto next_event = [&]() -> nlohmann::json {
    auto line = learner->ReadLine(absl::Minutes(3));
    EXPECT_TRUE(line.ok()) << line.status() << launch::TailOfFile(learner->log_path());
    if (!line.ok()) return {};
    events.push_back(nlohmann::json::parse(*line));
    return events.back();
  };
  // Three steps in, kill worker 0 without warning, start worker 2.
  while (next_event().value("step", 0) < 3) {
  }
  w0->process().Signal(SIGKILL);
  ASSERT_EQ(*w0->process().Wait(absl::Seconds(10)), 128 + SIGKILL);
  auto w2 = worker(2);
  ASSERT_TRUE(w2);
  nlohmann::json done;
  while (true) {
    nlohmann::json e = next_event();
    ASSERT_FALSE(e.is_null());
    if (e.value("event", "") == "done") {
      done = e;
      break;
    }
  }
  EXPECT_EQ(done["step"].get<int>(), steps);
  ExpectLedgerBalances(done["ledger"], steps * 16);

  // The survivors' own ledgers: everything they generated was acked or is still unacked.
  for (auto* w : {w1.get(), w2.get()}) {
    httplib::Client client("127.0.0.1", w->metrics_port());
    auto res = client.Get("/metrics");
    ASSERT_TRUE(res && res->status == 200) << w->name();
    const double generated = MetricSum(res->body, "rlhf_rollout_trajectories_generated_total");
    const double acked = MetricSum(res->body, "rlhf_rollout_acks_total");
    const double unacked = MetricSum(res->body, "rlhf_rollout_unacked");
    EXPECT_GT(generated, 0) << w->name();
    EXPECT_EQ(generated, acked + unacked) << w->name() << "\n" << res->body;
    EXPECT_GT(MetricSum(res->body, "rlhf_rollout_acks_total{outcome=\"accepted\"}"), 0)
        << w->name();
  }
  auto learner_exit = learner->process().Wait(absl::Seconds(30));
  ASSERT_TRUE(learner_exit.ok());
  EXPECT_EQ(*learner_exit, 0);
  for (auto* p : {w1.get(), w2.get(), reference.get(), reward.get()}) {
    auto code = p->Stop(absl::Seconds(15));
    ASSERT_TRUE(code.ok());
    EXPECT_EQ(*code, 0) << p->name() << "\n" << launch::TailOfFile(p->log_path());
  }
}

}  // namespace
}  // namespace rlhf
