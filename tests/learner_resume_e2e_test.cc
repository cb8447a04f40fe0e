// Learner kill-and-resume, with real learner processes on the stories260K fixture: a learner
// SIGKILLed mid-run and started again on its checkpoint directory ends with the same parameters
// as a learner that was never interrupted, when both are given the same trajectories in the
// same order, and loses none of them.
//
// Deterministic replay: one stream pushes a fixed list of trajectories (no rollout workers, whose
// timing would decide which trajectory lands in which batch). The interrupted run checkpoints
// every 2 steps and is killed after step 3, so it resumes from step 2: the work of step 3 is lost
// and its trajectories must come back from the journal, in order, ahead of those still queued;
// the resent ones are DUPLICATE. With a running mesh instead, which trajectory ends up in which
// batch depends on worker timing, so parameter equality cannot be asked of it; the chaos test in
// ppo_e2e_test checks the ledger and the step count there instead.
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/checkpoint/checkpoint.h"
#include "common/grpc/server.h"
#include "common/launch/service_process.h"
#include "common/testing/shared_data.h"
#include "gtest/gtest.h"
#include "rlhf/v1/services.grpc.pb.h"
#include "services/learner/ppo_test_util.h"
#include "services/learner/run_ledger.h"
#include "services/learner/trajectory_journal.h"

namespace rlhf {
namespace {

namespace fs = std::filesystem;
using rlhf::v1::Ack;
using rlhf::v1::Trajectory;

constexpr int kSteps = 6;
constexpr int kBatch = 8;

std::string Model() { return testing::SharedPath("models/stories260K.bin"); }

std::string TempDir(const std::string& name) {
  const std::string dir =
      absl::StrCat(::testing::TempDir(), "/learner_resume_", getpid(), "_", name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::unique_ptr<launch::ServiceProcess> StartLearner(const std::string& dir,
                                                     const std::string& name) {
  const std::string prompts = dir + "/prompts.jsonl";
  std::ofstream(prompts) << "{\"prompt\": \"Once upon a time\"}\n{\"prompt\": \"Tom\"}\n";
  const nlohmann::json config = {
      {"server", {{"shutdown_grace_seconds", 1}}},
      {"policy", Model()},
      {"tokenizer", testing::SharedPath("models/tok512.model")},
      {"prompts", prompts},
      {"total_steps", kSteps},
      {"max_queue", 64},
      {"max_policy_lag", 1000},  // no trajectory is ever stale: the batches are the push order
      {"checkpoint_dir", dir + "/checkpoints"},
      {"checkpoint_every", 2},
      {"threads", 1},
      {"sampling", {{"temperature", 1.0}, {"max_new_tokens", 8}}},
      {"ppo",
       {{"batch_size", kBatch},
        {"minibatch_size", 4},
        {"epochs", 2},
        {"learning_rate", 1e-3},
        {"critic_learning_rate", 1e-3},
        {"seed", 3}}}};
  const std::string config_path = dir + "/learner.json";
  std::ofstream(config_path) << config.dump(2);
  launch::ServiceProcessOptions o;
  o.name = name;
  o.binary = RLHF_LEARNER_BIN;
  o.config_path = config_path;
  o.log_path = dir + "/" + name + ".log";
  o.health_service = "rlhf.v1.Learner";
  auto p = launch::ServiceProcess::Start(o);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? std::move(*p) : nullptr;
}

// Pushes `trajectories` in order on one stream and returns the acks' outcomes.
std::vector<Ack::Outcome> Push(launch::ServiceProcess& learner,
                               const std::vector<Trajectory>& trajectories) {
  auto stub = rlhf::v1::Learner::NewStub(learner.channel());
  ::grpc::ClientContext ctx;
  auto stream = stub->PushTrajectories(&ctx);
  std::vector<Ack::Outcome> outcomes;
  std::thread reader([&] {
    Ack ack;
    while (stream->Read(&ack)) outcomes.push_back(ack.outcome());
  });
  for (const auto& t : trajectories) EXPECT_TRUE(stream->Write(t));
  stream->WritesDone();
  reader.join();
  EXPECT_TRUE(stream->Finish().ok());
  return outcomes;
}

// Reads the learner's step events until one with "step" == `step` (or "done"); returns it.
nlohmann::json WaitForEvent(launch::ServiceProcess& learner, const std::string& kind,
                            int step = 0) {
  while (true) {
    auto line = learner.ReadLine(absl::Minutes(2));
    EXPECT_TRUE(line.ok()) << line.status() << launch::TailOfFile(learner.log_path());
    if (!line.ok()) return {};
    auto e = nlohmann::json::parse(*line, nullptr, false);
    if (e.is_discarded()) continue;
    if (e.value("event", "") == kind && (kind != "step" || e.value("step", 0) == step)) return e;
  }
}

int Count(const std::vector<Ack::Outcome>& outcomes, Ack::Outcome o) {
  return static_cast<int>(std::count(outcomes.begin(), outcomes.end(), o));
}

TEST(LearnerResumeE2eTest, AKilledLearnerResumesToTheSameParametersAndLosesNoTrajectory) {
  auto policy = checkpoint::LoadModel(Model());
  ASSERT_TRUE(policy.ok()) << policy.status();
  const std::vector<Trajectory> all = learner::testing::SampleTrajectories(
      *policy, kSteps * kBatch, /*max_new_tokens=*/8, /*seed=*/11, /*favoured_token=*/5, "feeder");
  const std::vector<Trajectory> first(all.begin(), all.begin() + 3 * kBatch + 4);

  // Uninterrupted.
  const std::string a = TempDir("uninterrupted");
  {
    auto learner = StartLearner(a, "learner");
    ASSERT_TRUE(learner);
    EXPECT_EQ(Count(Push(*learner, all), Ack::ACCEPTED), kSteps * kBatch);
    EXPECT_EQ(WaitForEvent(*learner, "done")["step"], kSteps);
    EXPECT_EQ(*learner->process().Wait(absl::Seconds(30)), 0);
  }

  // Killed after step 3 (checkpoint of step 2), with 4 more trajectories queued, then restarted
  // on the same directory and sent everything again.
  const std::string b = TempDir("killed");
  {
    auto learner = StartLearner(b, "learner");
    ASSERT_TRUE(learner);
    EXPECT_EQ(Count(Push(*learner, first), Ack::ACCEPTED), static_cast<int>(first.size()));
    WaitForEvent(*learner, "step", 3);
    learner->process().Signal(SIGKILL);
    EXPECT_EQ(*learner->process().Wait(absl::Seconds(10)), 128 + SIGKILL);
  }
  std::ifstream latest(b + "/checkpoints/latest");
  std::string name;
  latest >> name;
  EXPECT_EQ(name, "step-00000002");
  {
    auto learner = StartLearner(b, "learner-restarted");
    ASSERT_TRUE(learner);
    const auto outcomes = Push(*learner, all);
    EXPECT_EQ(Count(outcomes, Ack::DUPLICATE), static_cast<int>(first.size()));
    EXPECT_EQ(Count(outcomes, Ack::ACCEPTED), static_cast<int>(all.size() - first.size()));
    const nlohmann::json done = WaitForEvent(*learner, "done");
    EXPECT_EQ(done["step"], kSteps);
    // The restarted learner's ledger (rebuilt from the journal) counts the whole run once.
    EXPECT_EQ(done["ledger"]["consumed"], kSteps * kBatch) << done.dump();
    EXPECT_EQ(done["ledger"]["accepted"], kSteps * kBatch) << done.dump();
    EXPECT_EQ(*learner->process().Wait(absl::Seconds(30)), 0);
    EXPECT_NE(launch::TailOfFile(learner->log_path(), 200).find("resumed from"), std::string::npos);
  }

  // Same parameters.
  const std::string final_dir = absl::StrCat("/checkpoints/step-0000000", kSteps, "/policy");
  auto pa = checkpoint::LoadModel(a + final_dir);
  auto pb = checkpoint::LoadModel(b + final_dir);
  ASSERT_TRUE(pa.ok() && pb.ok());
  auto params_a = (*pa)->named_parameters();
  auto params_b = (*pb)->named_parameters();
  ASSERT_EQ(params_a.size(), params_b.size());
  double max_diff = 0;
  for (const auto& p : params_a) {
    max_diff = std::max(max_diff, (p.value() - params_b[p.key()]).abs().max().item<double>());
  }
  EXPECT_LT(max_diff, 1e-6);
  // And they moved: the comparison is not between two untrained copies.
  double moved = 0;
  for (const auto& p : (*policy)->named_parameters()) {
    moved = std::max(moved, (p.value() - params_a[p.key()]).abs().max().item<double>());
  }
  EXPECT_GT(moved, 1e-4);

  // Per trajectory id: every one consumed exactly once, none lost.
  const std::string generated = b + "/feeder.generated";
  {
    std::ofstream out(generated);
    for (const auto& t : all) out << t.id() << "\n";
  }
  auto ledger = learner::ComputeRunLedger({generated}, learner::JournalPath(b + "/checkpoints"));
  ASSERT_TRUE(ledger.ok()) << ledger.status();
  SCOPED_TRACE(ledger->ToJson().dump());
  EXPECT_TRUE(ledger->balanced());
  EXPECT_EQ(ledger->consumed, kSteps * kBatch);
  EXPECT_EQ(ledger->in_flight_at_stop, 0);
  EXPECT_EQ(ledger->duplicates_received, static_cast<int64_t>(first.size()));
  EXPECT_EQ(ledger->learner_restarts, 1);
}

}  // namespace
}  // namespace rlhf
