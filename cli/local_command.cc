#include "cli/local_command.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/file/file.h"
#include "common/config/config.h"
#include "common/launch/service_process.h"
#include "common/process/free_port.h"
#include "common/status/status_macros.h"
#include "rlhf/v1/config.pb.h"
#include "services/learner/advantage_config.h"
#include "services/learner/run_ledger.h"
#include "services/learner/trajectory_journal.h"

namespace rlhf::cli {
namespace {

namespace fs = std::filesystem;
using launch::ServiceProcess;

volatile sig_atomic_t g_signal = 0;
void OnSignal(int sig) { g_signal = sig; }
// SIGUSR1 / SIGUSR2: one more / one fewer rollout worker (handled by the main loop).
std::atomic<int> g_add_workers{0};
std::atomic<int> g_remove_workers{0};
static_assert(std::atomic<int>::is_always_lock_free, "used from a signal handler");
void OnScaleSignal(int sig) {
  if (sig == SIGUSR1) g_add_workers.fetch_add(1);
  if (sig == SIGUSR2) g_remove_workers.fetch_add(1);
}

absl::Status Check(const rlhf::v1::LocalConfig& c) {
  auto bad = [](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("local config: ", what));
  };
  if (c.rollout_workers() < 1) return bad("rollout_workers must be >= 1");
  if (c.learner().policy().empty()) return bad("learner.policy is required");
  if (c.learner().tokenizer().empty()) return bad("learner.tokenizer is required");
  if (c.learner().prompts().empty()) return bad("learner.prompts is required");
  if (c.rollout().model().empty()) return bad("rollout.model is required");
  if (c.reference().model().empty()) return bad("reference.model is required");
  if (c.reward().model().empty() && c.reward().rules_size() == 0) {
    return bad("reward needs a model or rules");
  }
  if (!(c.start_timeout_seconds() > 0)) return bad("start_timeout_seconds must be > 0");
  if (c.learner_ranks() < 1) return bad("learner_ranks must be >= 1");
  if (c.learner().ppo().batch_size() % c.learner_ranks() != 0) {
    return bad("learner.ppo.batch_size must be a multiple of learner_ranks");
  }
  RLHF_RETURN_IF_ERROR(learner::ValidateAdvantageConfig(c.learner()));
  return absl::OkStatus();
}

absl::Status WriteConfig(const std::string& path, const google::protobuf::Message& config) {
  std::ofstream out(path);
  out << config::ConfigToJson(config) << "\n";
  if (!out.good()) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

// Children in start order; stopped in reverse.
class Fleet {
 public:
  Fleet(std::string run_dir, std::string bin_dir, absl::Duration start_timeout)
      : run_dir_(std::move(run_dir)), bin_dir_(std::move(bin_dir)), timeout_(start_timeout) {}
  ~Fleet() { StopAll(); }

  absl::StatusOr<ServiceProcess*> Start(const std::string& name, const std::string& binary,
                                        const google::protobuf::Message& config,
                                        const std::string& health_service) {
    RLHF_ASSIGN_OR_RETURN(ServiceProcess * child, Launch(name, binary, config, health_service));
    RLHF_RETURN_IF_ERROR(AwaitServing(child));
    return child;
  }

  // Starts a child without waiting for it to serve (see ServiceProcess::Launch); then
  // AwaitServing(child). `env` is added to the child's environment.
  absl::StatusOr<ServiceProcess*> Launch(
      const std::string& name, const std::string& binary, const google::protobuf::Message& config,
      const std::string& health_service,
      std::vector<std::pair<std::string, std::string>> env = {}) {
    RLHF_ASSIGN_OR_RETURN(std::string path, launch::FindServiceBinary(bin_dir_, binary));
    const std::string config_path = absl::StrCat(run_dir_, "/", name, ".json");
    RLHF_RETURN_IF_ERROR(WriteConfig(config_path, config));
    launch::ServiceProcessOptions o;
    o.name = name;
    o.binary = path;
    o.config_path = config_path;
    o.log_path = absl::StrCat(run_dir_, "/", name, ".log");
    o.health_service = health_service;
    o.start_timeout = timeout_;
    o.env = std::move(env);
    RLHF_ASSIGN_OR_RETURN(auto child, ServiceProcess::Launch(o));
    children_.push_back(std::move(child));
    services_.push_back(binary);
    return children_.back().get();
  }

  absl::Status AwaitServing(ServiceProcess* child) {
    RLHF_RETURN_IF_ERROR(child->AwaitServing());
    std::fprintf(stderr, "rlhf local: %-10s serving on %s (pid %d, metrics :%d, log %s)\n",
                 child->name().c_str(), child->address().c_str(),
                 static_cast<int>(child->process().pid()), child->metrics_port(),
                 child->log_path().c_str());
    return WritePrometheusTargets();
  }

  // Stops `child` (SIGTERM, SIGKILL after `grace`) and forgets it; returns its exit code.
  absl::StatusOr<int> Stop(ServiceProcess* child, absl::Duration grace) {
    auto code = child->Stop(grace);
    Forget(child);
    return code;
  }

  // Forgets a child that has exited.
  void Forget(ServiceProcess* child) {
    for (size_t i = 0; i < children_.size(); ++i) {
      if (children_[i].get() != child) continue;
      children_.erase(children_.begin() + static_cast<std::ptrdiff_t>(i));
      services_.erase(services_.begin() + static_cast<std::ptrdiff_t>(i));
      break;
    }
    (void)WritePrometheusTargets();  // best effort: a stale target only shows as down
  }

  // A child not in `except` that has exited, if any.
  ServiceProcess* FindExited(const std::vector<ServiceProcess*>& except, int* code) {
    for (auto& c : children_) {
      if (std::find(except.begin(), except.end(), c.get()) != except.end()) continue;
      auto polled = c->Poll();
      if (polled.ok()) {
        *code = *polled;
        return c.get();
      }
    }
    return nullptr;
  }

  void StopAll() {
    for (auto it = children_.rbegin(); it != children_.rend(); ++it) {
      auto code = (*it)->Stop(absl::Seconds(15));
      if (code.ok() && *code != 0 && *code != 128 + SIGTERM) {
        std::fprintf(stderr, "rlhf local: %s exited with %d\n", (*it)->name().c_str(), *code);
      }
    }
    children_.clear();
    services_.clear();
  }

 private:
  // run_dir/prometheus_targets.json: every child's metrics endpoint as Prometheus file-based
  // service discovery (file_sd_configs), labelled service=<binary> and process=<name>; written
  // whole and renamed into place, since Prometheus re-reads it when it changes.
  absl::Status WritePrometheusTargets() {
    nlohmann::json groups = nlohmann::json::array();
    for (size_t i = 0; i < children_.size(); ++i) {
      if (children_[i]->metrics_port() <= 0) continue;
      groups.push_back(
          {{"targets", {absl::StrCat("127.0.0.1:", children_[i]->metrics_port())}},
           {"labels", {{"service", services_[i]}, {"process", children_[i]->name()}}}});
    }
    return file::WriteFileAtomically(absl::StrCat(run_dir_, "/prometheus_targets.json"),
                                     groups.dump(2) + "\n");
  }

  const std::string run_dir_;
  const std::string bin_dir_;
  const absl::Duration timeout_;
  std::vector<std::unique_ptr<ServiceProcess>> children_;
  std::vector<std::string> services_;  // the binary of each child
};

std::string ProgressLine(const nlohmann::json& e, int total_steps) {
  const nlohmann::json& l = e["ledger"];
  return absl::StrFormat(
      "step %d/%d  reward %.4f  kl %.4f  kl_coef %.4f  clipfrac %.3f  entropy %.3f  "
      "vf_loss %.4f  len %.1f  %.2fs  | trajectories accepted %d consumed %d dropped %d",
      e.value("step", 0), total_steps, e.value("reward_mean", 0.0), e.value("kl_mean", 0.0),
      e.value("kl_coef", 0.0), e.value("clipfrac", 0.0), e.value("entropy", 0.0),
      e.value("value_loss", 0.0), e.value("response_length_mean", 0.0),
      e.value("step_seconds", 0.0), l.value("accepted", 0), l.value("consumed", 0),
      l.value("duplicate", 0) + l.value("invalid", 0) + l.value("stale_on_arrival", 0) +
          l.value("stale_at_pop", 0) + l.value("cancelled", 0));
}

absl::Status Failed(ServiceProcess* child, int code) {
  return absl::AbortedError(absl::StrCat(child->name(), " exited with status ", code,
                                         "; last lines of ", child->log_path(), ":\n",
                                         launch::TailOfFile(child->log_path())));
}

// run_dir/report.json: the learner's final event and the run's ledger per trajectory id (what
// the workers generated, run_dir/workers/*.generated, against the learner's journal); prints
// the ledger. A ledger that does not
// balance is an error.
absl::Status WriteReport(const std::string& run_dir, const nlohmann::json& done_event,
                         const std::vector<std::string>& generated_logs,
                         const std::string& journal_path) {
  // Every worker's log in the run directory, including those of earlier runs that this one
  // resumed: the learner's journal spans them all.
  std::vector<std::string> logs;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(run_dir + "/workers", ec)) {
    if (entry.path().extension() == ".generated") logs.push_back(entry.path().string());
  }
  if (ec) return absl::InternalError(absl::StrCat("cannot list ", run_dir, "/workers"));
  RLHF_ASSIGN_OR_RETURN(learner::RunLedger ledger,
                        learner::ComputeRunLedger(logs, journal_path));
  const nlohmann::json report = {{"steps", done_event.value("step", 0)},
                                 {"workers_started", generated_logs.size()},
                                 {"generated_logs", logs.size()},
                                 {"learner", done_event["ledger"]},
                                 {"ledger", ledger.ToJson()}};
  const std::string path = run_dir + "/report.json";
  std::ofstream out(path);
  out << report.dump(2) << "\n";
  if (!out.good()) return absl::InternalError(absl::StrCat("cannot write ", path));
  std::printf(
      "rlhf local: ledger: generated %lld = consumed %lld + dropped %lld (stale %lld, invalid "
      "%lld, shutdown %lld) + in flight at stop %lld; %lld duplicate receipts; %s (%s)\n",
      static_cast<long long>(ledger.generated), static_cast<long long>(ledger.consumed),
      static_cast<long long>(ledger.dropped()), static_cast<long long>(ledger.dropped_stale),
      static_cast<long long>(ledger.dropped_invalid),
      static_cast<long long>(ledger.dropped_shutdown),
      static_cast<long long>(ledger.in_flight_at_stop),
      static_cast<long long>(ledger.duplicates_received),
      ledger.balanced() ? "balanced" : "NOT BALANCED", path.c_str());
  if (!ledger.balanced()) {
    return absl::DataLossError(absl::StrCat(
        "the run's ledger does not balance: ", ledger.ToJson().dump(), " (", path, ")"));
  }
  return absl::OkStatus();
}

// Loopback children: port 0, and a short drain unless the config sets one (nothing on a laptop
// needs 5 s to drain, and Ctrl-C should feel immediate).
void ForLoopback(rlhf::v1::ServerConfig* server) {
  server->set_listen_address("127.0.0.1:0");
  if (!server->has_shutdown_grace_seconds()) server->set_shutdown_grace_seconds(1);
}

absl::Status RunFleet(const rlhf::v1::LocalConfig& c, const std::string& run_dir) {
  Fleet fleet(run_dir, c.bin_dir(), absl::Seconds(c.start_timeout_seconds()));

  rlhf::v1::RewardConfig reward = c.reward();
  ForLoopback(reward.mutable_server());
  RLHF_ASSIGN_OR_RETURN(ServiceProcess * reward_proc,
                        fleet.Start("reward", "reward", reward, "rlhf.v1.Reward"));
  rlhf::v1::ReferenceConfig reference = c.reference();
  ForLoopback(reference.mutable_server());
  RLHF_ASSIGN_OR_RETURN(ServiceProcess * reference_proc,
                        fleet.Start("reference", "reference", reference, "rlhf.v1.Reference"));
  rlhf::v1::LearnerConfig learner = c.learner();
  ForLoopback(learner.mutable_server());
  if (learner.checkpoint_dir().empty()) learner.set_checkpoint_dir(run_dir + "/checkpoints");
  // Learner ranks: every rank is launched before any is awaited, since rank 0 serves only once
  // all of them have joined its group. Ranks > 0 serve health and metrics only.
  std::vector<ServiceProcess*> learner_ranks;
  {
    std::vector<std::pair<std::string, std::string>> env;
    if (c.learner_ranks() > 1) {
      const int master_port = process::FreeLoopbackPort();
      if (master_port == 0) return absl::InternalError("no free loopback port for the ranks");
      env = {{"MASTER_ADDR", "127.0.0.1"},
             {"MASTER_PORT", absl::StrCat(master_port)},
             {"WORLD_SIZE", absl::StrCat(c.learner_ranks())}};
    }
    for (int r = 0; r < c.learner_ranks(); ++r) {
      auto rank_env = env;
      if (c.learner_ranks() > 1) {
        rank_env.emplace_back("RANK", absl::StrCat(r));
        rank_env.emplace_back("LOCAL_RANK", absl::StrCat(r));
      }
      RLHF_ASSIGN_OR_RETURN(
          ServiceProcess * p,
          fleet.Launch(r == 0 ? std::string("learner") : absl::StrCat("learner-rank-", r),
                       "learner", learner, r == 0 ? "rlhf.v1.Learner" : "", std::move(rank_env)));
      learner_ranks.push_back(p);
    }
    for (ServiceProcess* p : learner_ranks) RLHF_RETURN_IF_ERROR(fleet.AwaitServing(p));
  }
  ServiceProcess* const learner_proc = learner_ranks.front();
  // Rollout workers: elastic. SIGUSR1 adds one, SIGUSR2 stops the newest gracefully (it hands
  // back its lease and waits for its acks), and a worker that dies is replaced, as a Deployment
  // would; ids are never reused, so a replacement's trajectories are its own.
  std::vector<ServiceProcess*> workers;
  std::vector<std::string> generated_logs;  // one per worker ever started
  int next_worker = 0;
  {
    std::error_code ec;
    fs::create_directories(run_dir + "/workers", ec);
    if (ec) return absl::InternalError(absl::StrCat("cannot create ", run_dir, "/workers"));
  }
  auto start_worker = [&]() -> absl::Status {
    rlhf::v1::RolloutConfig rollout = c.rollout();
    ForLoopback(rollout.mutable_server());
    rlhf::v1::WorkerConfig* w = rollout.mutable_worker();
    w->set_learner(learner_proc->address());
    w->set_reward(reward_proc->address());
    w->set_reference(reference_proc->address());
    w->set_worker_id(absl::StrCat("worker-", next_worker));
    w->set_generated_log(absl::StrCat(run_dir, "/workers/worker-", next_worker, ".generated"));
    generated_logs.push_back(w->generated_log());
    RLHF_ASSIGN_OR_RETURN(ServiceProcess * p, fleet.Start(absl::StrCat("rollout-", next_worker),
                                                          "rollout", rollout, "rlhf.v1.Rollout"));
    ++next_worker;
    workers.push_back(p);
    return absl::OkStatus();
  };
  for (int i = 0; i < c.rollout_workers(); ++i) RLHF_RETURN_IF_ERROR(start_worker());
  // Applies pending scale signals and replaces dead workers.
  auto tend_workers = [&]() -> absl::Status {
    for (; g_add_workers.load() > 0; g_add_workers.fetch_sub(1)) {
      RLHF_RETURN_IF_ERROR(start_worker());
      std::printf("rlhf local: added %s (%zu workers)\n", workers.back()->name().c_str(),
                  workers.size());
    }
    for (; g_remove_workers.load() > 0; g_remove_workers.fetch_sub(1)) {
      if (workers.size() <= 1) {
        std::printf("rlhf local: keeping the last worker\n");
        continue;
      }
      ServiceProcess* p = workers.back();
      workers.pop_back();
      const std::string name = p->name();
      auto code = fleet.Stop(p, absl::Seconds(15));
      std::printf("rlhf local: removed %s (exit %d; %zu workers)\n", name.c_str(),
                  code.ok() ? *code : -1, workers.size());
    }
    for (size_t i = 0; i < workers.size(); ++i) {
      auto exited = workers[i]->Poll();
      if (!exited.ok()) continue;
      // Killed (by a signal, the OOM killer, a chaos test) is replaced; an error exit is a
      // problem of the config or the code that a replacement would only repeat.
      if (*exited <= 128) return Failed(workers[i], *exited);
      const std::string name = workers[i]->name();
      fleet.Forget(workers[i]);
      workers.erase(workers.begin() + static_cast<std::ptrdiff_t>(i));
      RLHF_RETURN_IF_ERROR(start_worker());
      std::printf("rlhf local: %s exited with %d; replaced by %s\n", name.c_str(), *exited,
                  workers.back()->name().c_str());
      --i;
    }
    std::fflush(stdout);
    return absl::OkStatus();
  };
  // reward and reference: one killed by a signal is started again on its own address, as a
  // Deployment would restart it (the workers' channels reconnect and their retries cover the
  // gap); an error exit fails the run, since a restart would only repeat it.
  int service_restarts = 0;
  auto tend_service = [&](ServiceProcess** proc, auto& config, const std::string& binary,
                          const std::string& health_service) -> absl::Status {
    auto exited = (*proc)->Poll();
    if (!exited.ok()) return absl::OkStatus();
    if (*exited <= 128) return Failed(*proc, *exited);
    const std::string name = (*proc)->name();
    const std::string address = (*proc)->address();
    fleet.Forget(*proc);
    *proc = nullptr;
    config.mutable_server()->set_listen_address(address);
    RLHF_ASSIGN_OR_RETURN(*proc, fleet.Start(absl::StrCat(binary, "-", ++service_restarts), binary,
                                             config, health_service));
    std::printf("rlhf local: %s exited with %d; restarted as %s on %s\n", name.c_str(), *exited,
                (*proc)->name().c_str(), address.c_str());
    return absl::OkStatus();
  };
  std::printf(
      "rlhf local: %d rollout workers; %d learner rank(s); %d PPO steps of %d trajectories; run "
      "directory %s\n",
      c.rollout_workers(), c.learner_ranks(), learner.total_steps(), learner.ppo().batch_size(),
      run_dir.c_str());
  std::fflush(stdout);

  std::ofstream steps(run_dir + "/steps.jsonl");
  nlohmann::json done_event;
  bool done = false;
  bool stopping = false;  // the learner was asked to stop after its current step
  while (!done) {
    if (g_signal != 0 && !stopping) {
      // The first Ctrl-C (or SIGTERM) is a graceful stop: the learner ends its step, writes a
      // checkpoint and reports "stopped", and the run's ledger is reconciled as at the end.
      // Cleared before the message, so that a second signal sent after it is never lost.
      const int sig = g_signal;
      g_signal = 0;
      stopping = true;
      learner_proc->process().Signal(SIGTERM);
      std::printf(
          "rlhf local: signal %d: the learner stops after its current step (again to stop at "
          "once)\n",
          sig);
      std::fflush(stdout);
    }
    if (g_signal != 0) {
      std::printf("rlhf local: signal %d, stopping every process\n", static_cast<int>(g_signal));
      return absl::CancelledError(absl::StrCat("interrupted by signal ", g_signal));
    }
    RLHF_RETURN_IF_ERROR(tend_workers());
    RLHF_RETURN_IF_ERROR(tend_service(&reward_proc, reward, "reward", "rlhf.v1.Reward"));
    RLHF_RETURN_IF_ERROR(
        tend_service(&reference_proc, reference, "reference", "rlhf.v1.Reference"));
    int code = 0;
    std::vector<ServiceProcess*> tended = workers;
    tended.insert(tended.end(), learner_ranks.begin(), learner_ranks.end());
    tended.push_back(reward_proc);
    tended.push_back(reference_proc);
    if (ServiceProcess* gone = fleet.FindExited(tended, &code)) return Failed(gone, code);
    // Ranks > 0 exit 0 when rank 0 tells them the run is over; any other exit fails the run.
    for (size_t r = 1; r < learner_ranks.size(); ++r) {
      auto exited = learner_ranks[r]->Poll();
      if (exited.ok() && *exited != 0) return Failed(learner_ranks[r], *exited);
    }
    auto line = learner_proc->ReadLine(absl::Milliseconds(500));
    if (absl::IsDeadlineExceeded(line.status())) continue;
    if (!line.ok()) {  // the learner closed stdout: it exited
      auto exit = learner_proc->process().Wait(absl::Seconds(30));
      return Failed(learner_proc, exit.ok() ? *exit : -1);
    }
    steps << *line << "\n" << std::flush;
    nlohmann::json event = nlohmann::json::parse(*line, nullptr, /*allow_exceptions=*/false);
    if (event.is_discarded() || !event.is_object()) continue;
    const std::string kind = event.value("event", "");
    if (kind == "step") {
      std::printf("%s\n", ProgressLine(event, learner.total_steps()).c_str());
    } else if (kind == "done") {
      std::printf("rlhf local: done after %d steps; learner ledger %s\n", event.value("step", 0),
                  event["ledger"].dump().c_str());
      done_event = event;
      done = true;
    } else if (kind == "stopped") {  // by a signal: ours, or one sent to the learner itself
      std::printf("rlhf local: the learner stopped at step %d of %d (%d trajectories of a partial "
                  "batch not trained on); learner ledger %s\n",
                  event.value("step", 0), learner.total_steps(), event.value("discarded", 0),
                  event["ledger"].dump().c_str());
      done_event = event;
      done = true;
    }
    std::fflush(stdout);
  }
  for (ServiceProcess* p : learner_ranks) {
    auto exit = p->process().Wait(absl::Seconds(60));
    if (!exit.ok() || *exit != 0) return Failed(p, exit.ok() ? *exit : -1);
  }
  fleet.StopAll();  // the workers' generated logs are complete once they have exited
  RLHF_RETURN_IF_ERROR(WriteReport(run_dir, done_event, generated_logs,
                                   learner::JournalPath(learner.checkpoint_dir())));
  std::printf("rlhf local: final checkpoint in %s, logs in %s\n", learner.checkpoint_dir().c_str(),
              run_dir.c_str());
  return absl::OkStatus();
}

}  // namespace

CLI::App* AddLocalCommand(CLI::App& app, LocalArgs& args) {
  CLI::App* cmd =
      app.add_subcommand("local",
                         "Run the PPO loop on this machine: learner, rollout workers, reward and "
                         "reference as separate processes on loopback");
  cmd->add_option("--config", args.config, "LocalConfig file (YAML or JSON)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--set", args.overrides, "Override a config field: path.to.field=value");
  return cmd;
}

absl::Status RunLocal(const LocalArgs& args) {
  rlhf::v1::LocalConfig c;
  RLHF_RETURN_IF_ERROR(config::LoadConfig(args.config, args.overrides, &c));
  RLHF_RETURN_IF_ERROR(Check(c));
  std::string run_dir = c.run_dir();
  if (run_dir.empty()) {
    run_dir =
        absl::StrCat("runs/", absl::FormatTime("%Y%m%d-%H%M%S", absl::Now(), absl::UTCTimeZone()));
  }
  std::error_code ec;
  fs::create_directories(run_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", run_dir, ": ", ec.message()));
  struct sigaction sa = {};
  sa.sa_handler = OnSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  struct sigaction scale = {};
  scale.sa_handler = OnScaleSignal;
  sigaction(SIGUSR1, &scale, nullptr);
  sigaction(SIGUSR2, &scale, nullptr);
  return RunFleet(c, run_dir);
}

}  // namespace rlhf::cli
