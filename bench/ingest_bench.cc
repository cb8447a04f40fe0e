// Trajectory ingest benchmark: trajectories/s and MB/s that the learner takes in from
// --streams concurrent PushTrajectories streams, and the CPU the learner spends doing it.
// Goal: >= 20k trajectories/s on at most 1 core.
//
// The learner is a separate process (this binary re-executed with --serve; see
// bench/ingest_learner.h): the real LearnerService, queue, prompt pool and weight store behind
// the real server bring-up, with a consumer thread that pops batches and drops them as the
// learner loop would train on them. Its CPU is read from /proc/<pid>/stat (all its threads)
// at the start and end of each timed phase: learner_cpu_cores = CPU seconds / wall seconds.
//
// The clients play --streams rollout workers, each with its own channel (own TCP connection,
// as separate worker processes have) and one callback-API stream writing its trajectories back
// to back (one write in flight, acks read as they come). Before anything is timed every worker
// leases, over LeasePrompts, prompts for all the trajectories it will send, so each trajectory
// answers a leased prompt (prompt tokens copied from the lease) and the learner's
// PromptPool::Complete does its real work; leases last an hour and the learner's lease gate is
// off. A trajectory has --prompt_tokens + --response_tokens random token ids (vocab 32000),
// behaviour and reference log-probs for each response token, a reward, policy_version 0 (the
// version the learner published) and a unique id "<worker>/<seq>".
//
// Phases, each on fresh streams over the same connections: --warmup trajectories per stream
// (untimed); "peak": --trajectories per stream as fast as the learner takes them; "paced":
// --trajectories per stream at --rate trajectories/s over all streams (default: the goal
// rate). The learner's CPU per trajectory is much higher at a moderate rate than at the peak
// (fewer messages per read and write system call), so the core limit is judged on the paced
// phase: meets_goal = peak trajectories_per_s >= 20k and paced learner_cpu_cores <= 1.
//
// Output: one JSON line per timed phase (with each process's CPU by thread name: what limits
// the throughput), then a summary line with the learner's ledger. Exit status 1 when a stream
// fails or the ledger does not add up: every trajectory ACCEPTED, none duplicate, invalid or
// stale, consumed + queued == accepted, and every accepted trajectory completed its leased
// prompt.
#include <signal.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "bench/bench_util.h"
#include "bench/ingest_client.h"
#include "bench/ingest_learner.h"
#include "bench/proc_cpu.h"
#include "common/grpc/server.h"
#include "common/logging/logging.h"
#include "common/process/signals.h"
#include "common/process/subprocess.h"
#include "common/runtime/runtime.h"
#include "common/status/status_macros.h"
#include "nlohmann/json.hpp"

ABSL_FLAG(int, streams, 64, "concurrent PushTrajectories streams (one worker and channel each)");
ABSL_FLAG(int, trajectories, 4000, "trajectories per stream in each timed phase");
ABSL_FLAG(int, warmup, 200, "untimed trajectories per stream sent before the timed phases");
ABSL_FLAG(int, prompt_tokens, 64, "prompt tokens per trajectory");
ABSL_FLAG(int, response_tokens, 192, "response tokens per trajectory");
ABSL_FLAG(int, queue_capacity, 4096, "learner TrajectoryQueue capacity (max_queue)");
ABSL_FLAG(int, batch, 256, "trajectories the learner's consumer pops per step");
ABSL_FLAG(int, lease_prompts, 256, "prompts per LeasePrompts call");
ABSL_FLAG(double, goal_trajectories_per_s, 20000, "goal: trajectories/s at least");
ABSL_FLAG(double, rate, 20000,
          "trajectories/s over all streams in the second, paced timed phase, whose learner CPU "
          "the goal judges (0: no paced phase; the peak phase's CPU is judged)");
ABSL_FLAG(double, goal_cores, 1, "goal: learner CPU cores at most");
ABSL_FLAG(bool, journal, true,
          "the learner journals every trajectory (as a learner with checkpoint_dir does), to a "
          "file under TMPDIR");
ABSL_FLAG(std::string, journal_sync, "none",
          "the journal's sync setting(s) (LearnerConfig.journal_sync): none, batch or every, or a "
          "comma-separated list, each run on a fresh learner and compared with the first");
ABSL_FLAG(std::string, journal_path, "", "internal: the learner side's journal file");
ABSL_FLAG(bool, serve, false, "internal: run the learner side (started by the bench itself)");

namespace rlhf::bench {
namespace {

using nlohmann::json;

// Where the learner side journals ("" = --journal=false): a fresh file per run.
std::string JournalPath() {
  if (!absl::GetFlag(FLAGS_journal)) return "";
  const char* tmp = std::getenv("TMPDIR");
  return absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/ingest_bench_", getpid(), ".journal");
}

// Starts the learner side: this binary with --serve. Returns it with its gRPC port read.
absl::StatusOr<std::unique_ptr<process::Subprocess>> StartLearner(const std::string& sync,
                                                                    int* port) {
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return absl::InternalError("readlink /proc/self/exe failed");
  self[n] = '\0';
  RLHF_ASSIGN_OR_RETURN(
      auto child,
      process::Subprocess::Start(
          {self, "--serve", absl::StrCat("--queue_capacity=", absl::GetFlag(FLAGS_queue_capacity)),
           absl::StrCat("--batch=", absl::GetFlag(FLAGS_batch)),
           absl::StrCat("--prompt_tokens=", absl::GetFlag(FLAGS_prompt_tokens)),
           absl::StrCat("--lease_prompts=", absl::GetFlag(FLAGS_lease_prompts)),
           absl::StrCat("--response_tokens=", absl::GetFlag(FLAGS_response_tokens)),
           absl::StrCat("--journal_path=", JournalPath()),
           absl::StrCat("--journal_sync=", sync)}));
  RLHF_ASSIGN_OR_RETURN(std::string line, child->ReadLine(absl::Seconds(60)));
  if (!absl::SimpleAtoi(line, port)) {
    return absl::InternalError(absl::StrCat("learner printed '", line, "', not a port"));
  }
  RLHF_RETURN_IF_ERROR(child->ReadLine(absl::Seconds(10)).status());  // the metrics port
  return child;
}

// Returns the ledger errors (empty when it adds up).
std::vector<std::string> CheckLedger(const json& l, int64_t sent) {
  std::vector<std::string> errors;
  auto expect = [&](const char* what, int64_t got, int64_t want) {
    if (got != want) errors.push_back(absl::StrCat(what, " = ", got, ", expected ", want));
  };
  auto get = [&l](const char* key) { return l.value(key, int64_t{-1}); };
  const int64_t accepted = get("accepted");
  expect("accepted", accepted, sent);
  expect("received", get("received"), sent);
  for (const char* zero : {"duplicate", "invalid", "stale_on_arrival", "stale_at_pop", "cancelled",
                           "parked", "prompts_ignored", "prompts_late"}) {
    expect(zero, get(zero), 0);
  }
  expect("consumed + queued", get("consumed") + get("queued"), accepted);
  expect("prompts_completed", get("prompts_completed"), accepted);
  return errors;
}

// A timed phase with both processes' CPU over it.
struct TimedPhase {
  PhaseResult r;
  double learner_cpu = 0;  // seconds
  json line;               // the phase's JSON line
};

absl::StatusOr<TimedPhase> RunTimedPhase(std::vector<Worker>& workers, int64_t per_stream,
                                         int per_lease, double rate, pid_t learner) {
  const ProcessCpu learner_start = ReadProcessCpu(learner);
  const ProcessCpu client_start = ReadProcessCpu(getpid());
  TimedPhase p;
  RLHF_ASSIGN_OR_RETURN(p.r, RunPhase(workers, per_stream, per_lease, rate));
  const ProcessCpu learner_end = ReadProcessCpu(learner);
  const ProcessCpu client_end = ReadProcessCpu(getpid());
  const PhaseResult& r = p.r;
  p.learner_cpu = learner_end.seconds - learner_start.seconds;
  const double n = static_cast<double>(r.written);
  p.line = {{"bench", "ingest"},
            {"phase", rate > 0 ? "paced" : "peak"},
            {"rate", rate},
            {"trajectories", r.written},
            {"seconds", r.seconds},
            {"trajectories_per_s", n / r.seconds},
            {"mb_per_s", static_cast<double>(r.bytes) / r.seconds / 1e6},
            {"bytes_per_trajectory", static_cast<double>(r.bytes) / n},
            {"learner_cpu_cores", p.learner_cpu / r.seconds},
            {"learner_cpu_us_per_trajectory", p.learner_cpu / n * 1e6},
            {"client_cpu_cores", (client_end.seconds - client_start.seconds) / r.seconds},
            {"accepted", r.accepted},
            {"duplicate", r.duplicate},
            {"other_acks", r.other},
            {"learner_cores_by_thread", CoresByThread(learner_start, learner_end, r.seconds)},
            {"client_cores_by_thread", CoresByThread(client_start, client_end, r.seconds)}};
  return p;
}

// Starts the learner, connects and leases for `streams` workers.
absl::StatusOr<std::vector<Worker>> StartWorkers(const std::string& address, int streams,
                                                 int64_t trajectories, PromptTokens* tokens) {
  RLHF_RETURN_IF_ERROR(grpc_util::WaitForServing(
      grpc_util::CreateChannel(address), "rlhf.v1.Learner", absl::Now() + absl::Seconds(30)));
  std::vector<Worker> workers(streams);
  for (int i = 0; i < streams; ++i) {
    Worker& w = workers[i];
    w.id = absl::StrCat("worker-", i);
    ::grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection of its own
    w.channel = ::grpc::CreateCustomChannel(address, ::grpc::InsecureChannelCredentials(), args);
    w.stub = rlhf::v1::Learner::NewStub(w.channel);
    RLHF_RETURN_IF_ERROR(Lease(&w, trajectories, absl::GetFlag(FLAGS_lease_prompts), tokens));
    InitTrajectory(&w, absl::GetFlag(FLAGS_response_tokens), /*seed=*/1000 + i);
  }
  LOG(INFO) << streams << " workers leased " << trajectories << " prompts each";
  return workers;
}

// Stops the learner and returns its ledger line.
absl::StatusOr<json> StopLearner(process::Subprocess* learner) {
  learner->Signal(SIGTERM);
  RLHF_ASSIGN_OR_RETURN(std::string line, learner->ReadLine(absl::Seconds(30)));
  RLHF_ASSIGN_OR_RETURN(int exit_code, learner->Wait(absl::Seconds(30)));
  json ledger = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (exit_code != 0 || !ledger.is_object()) {
    return absl::InternalError(absl::StrCat("learner exited ", exit_code, ": ", line));
  }
  return ledger;
}

// One learner with journal sync setting `sync`: prints its phases and summary line; returns the
// summary.
absl::StatusOr<json> RunOne(const std::string& sync) {
  const int streams = absl::GetFlag(FLAGS_streams);
  const int64_t timed = absl::GetFlag(FLAGS_trajectories);
  const int64_t warmup = absl::GetFlag(FLAGS_warmup);
  const int per_lease = absl::GetFlag(FLAGS_lease_prompts);
  const double rate = absl::GetFlag(FLAGS_rate);
  if (streams < 1 || timed < 1 || warmup < 0 || per_lease < 1 || rate < 0 ||
      absl::GetFlag(FLAGS_prompt_tokens) < 1 || absl::GetFlag(FLAGS_response_tokens) < 1) {
    return absl::InvalidArgumentError(
        "need --streams, --trajectories, --lease_prompts, --prompt_tokens, --response_tokens "
        ">= 1, --warmup >= 0 and --rate >= 0");
  }
  const int phases = rate > 0 ? 2 : 1;
  const int64_t per_stream = warmup + phases * timed;
  double load_before = -1;  // the 1-minute load average: was the machine busy?
  getloadavg(&load_before, 1);
  int port = 0;
  RLHF_ASSIGN_OR_RETURN(auto learner, StartLearner(sync, &port));
  PromptTokens tokens;
  RLHF_ASSIGN_OR_RETURN(std::vector<Worker> workers, StartWorkers(absl::StrCat("127.0.0.1:", port),
                                                                  streams, per_stream, &tokens));
  if (warmup > 0) RLHF_RETURN_IF_ERROR(RunPhase(workers, warmup, per_lease, /*rate=*/0).status());

  RLHF_ASSIGN_OR_RETURN(TimedPhase peak,
                        RunTimedPhase(workers, timed, per_lease, /*rate=*/0, learner->pid()));
  Print(peak.line);
  TimedPhase paced;
  if (rate > 0) {
    RLHF_ASSIGN_OR_RETURN(paced, RunTimedPhase(workers, timed, per_lease, rate, learner->pid()));
    Print(paced.line);
  }
  RLHF_ASSIGN_OR_RETURN(json ledger, StopLearner(learner.get()));

  // The learner's cores: at --rate when paced (the goal rate by default), else at the peak.
  const TimedPhase& judged = rate > 0 ? paced : peak;
  const double tps = static_cast<double>(peak.r.written) / peak.r.seconds;
  const double cores = judged.learner_cpu / judged.r.seconds;
  const bool meets = tps >= absl::GetFlag(FLAGS_goal_trajectories_per_s) &&
                     cores <= absl::GetFlag(FLAGS_goal_cores);
  if (const std::string journal = JournalPath(); !journal.empty()) std::remove(journal.c_str());
  json summary = {{"bench", "ingest"},
         {"summary", true},
         {"journal", absl::GetFlag(FLAGS_journal)},
         {"journal_sync", sync},
         {"streams", streams},
         {"tokens", absl::GetFlag(FLAGS_prompt_tokens) + absl::GetFlag(FLAGS_response_tokens)},
         {"trajectories", peak.r.written},
         {"seconds", peak.r.seconds},
         {"trajectories_per_s", tps},
         {"mb_per_s", peak.line["mb_per_s"]},
         {"learner_cpu_cores", cores},
         {"learner_cpu_at_trajectories_per_s",
          static_cast<double>(judged.r.written) / judged.r.seconds},
         {"learner_cpu_cores_peak", peak.learner_cpu / peak.r.seconds},
         {"accepted", peak.r.accepted + paced.r.accepted},
         {"duplicate", peak.r.duplicate + paced.r.duplicate},
         {"max_parked", ledger["max_parked"]},
         {"max_queued", ledger["max_queued"]},
         {"queue_capacity", absl::GetFlag(FLAGS_queue_capacity)},
         {"cpus", sysconf(_SC_NPROCESSORS_ONLN)},
         {"loadavg_1m_before", load_before},
         {"goal_trajectories_per_s", absl::GetFlag(FLAGS_goal_trajectories_per_s)},
         {"goal_cores", absl::GetFlag(FLAGS_goal_cores)},
         {"meets_goal", meets},
         {"ledger", ledger}};
  Print(summary);

  std::vector<std::string> errors = CheckLedger(ledger, streams * per_stream);
  for (const TimedPhase* p : {&peak, &paced}) {
    if (p->r.accepted != p->r.written) {
      errors.push_back(
          absl::StrCat("acks: ", p->r.accepted, " ACCEPTED of ", p->r.written, " sent"));
    }
  }
  if (!errors.empty()) {
    return absl::InternalError(absl::StrCat("ledger: ", absl::StrJoin(errors, "; ")));
  }
  return summary;
}

// Each --journal_sync setting on a fresh learner; with several, a last line compares each with
// the first (the baseline).
absl::Status Run() {
  const std::vector<std::string> syncs =
      absl::StrSplit(absl::GetFlag(FLAGS_journal_sync), ',', absl::SkipEmpty());
  for (const std::string& sync : syncs) {
    if (sync != "none" && sync != "batch" && sync != "every") {
      return absl::InvalidArgumentError(absl::StrCat(
          "--journal_sync: '", sync, "' is not none, batch or every (comma-separated)"));
    }
  }
  if (syncs.empty()) return absl::InvalidArgumentError("--journal_sync is empty");
  std::vector<json> summaries;
  for (const std::string& sync : syncs) {
    RLHF_ASSIGN_OR_RETURN(json summary, RunOne(sync));
    summaries.push_back(std::move(summary));
  }
  if (summaries.size() < 2) return absl::OkStatus();
  const json& base = summaries.front();
  json settings = json::array();
  for (const json& s : summaries) {
    settings.push_back(
        {{"journal_sync", s["journal_sync"]},
         {"trajectories_per_s", s["trajectories_per_s"]},
         {"learner_cpu_cores", s["learner_cpu_cores"]},
         {"throughput_vs_baseline", s["trajectories_per_s"].get<double>() /
                                        base["trajectories_per_s"].get<double>()},
         {"cpu_vs_baseline",
          s["learner_cpu_cores"].get<double>() / base["learner_cpu_cores"].get<double>()}});
  }
  Print({{"bench", "ingest"},
         {"compare", "journal_sync"},
         {"baseline", base["journal_sync"]},
         {"journal", absl::GetFlag(FLAGS_journal)},
         {"settings", settings}});
  return absl::OkStatus();
}

}  // namespace
}  // namespace rlhf::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_serve)) {
    rlhf::process::BlockTerminationSignals();  // before any thread starts
    rlhf::logging::Init(argv[0]);
    // As services/learner/main.cc does: its malloc tuning and thread set-up.
    if (absl::Status s = rlhf::runtime::InitTorchRuntime(/*num_threads=*/0); !s.ok()) {
      LOG(ERROR) << s;
      return 2;
    }
    rlhf::runtime::MakeThisThreadSerial();
    rlhf::bench::IngestLearnerOptions o;
    o.queue_capacity = absl::GetFlag(FLAGS_queue_capacity);
    o.batch_size = absl::GetFlag(FLAGS_batch);
    o.prompt_tokens = absl::GetFlag(FLAGS_prompt_tokens);
    o.max_lease_prompts = absl::GetFlag(FLAGS_lease_prompts);
    o.vocab_size = rlhf::bench::kIngestVocab;
    o.max_seq_len = absl::GetFlag(FLAGS_prompt_tokens) + absl::GetFlag(FLAGS_response_tokens);
    o.journal = absl::GetFlag(FLAGS_journal_path);
    const std::string sync = absl::GetFlag(FLAGS_journal_sync);
    using Sync = rlhf::learner::TrajectoryJournal::Sync;
    o.journal_sync = sync == "batch" ? Sync::kBatch : sync == "every" ? Sync::kEvery : Sync::kNone;
    if (absl::Status s = rlhf::bench::ServeIngestLearner(o); !s.ok()) {
      LOG(ERROR) << "learner side: " << s;
      return 1;
    }
    return 0;
  }
  rlhf::logging::Init(argv[0]);
  if (absl::Status s = rlhf::bench::Run(); !s.ok()) {
    LOG(ERROR) << s;
    return 1;
  }
  return 0;
}
