// One PPO iteration with the services as separate processes vs the same work in one process.
// Goal: multi-process seconds per iteration <= 1.10x in-process (ratio printed in the summary).
//
// Multi-process: the real reward (rule TEXT_SHARE "ver", weight 10), reference, learner and ONE
// rollout worker, started with common/launch/service_process.h as tests/ppo_e2e_test.cc does,
// with the torch threads of the --*_threads flags. A PPO batch is --worker_batches leases of
// --batch_prompts prompts. Seconds per iteration = mean interval between the learner's step
// events after --warmup steps; per-stage seconds come from the services' /metrics.
// In-process: the same work with the same code and no gRPC, sequentially on --inprocess_threads
// threads (bench/ppo_iteration_in_process.h: generate, reference log-probs, rule rewards, PPO
// step, weight swap).
// With max_policy_lag 1 (default) the worker generates the next batch while the learner trains
// (pipelining; the learner's lease gate keeps it from running further ahead, and any stale drops
// are reported); with 0 it waits while the learner trains (strictly synchronous).
// Threads (the budget is the machine's cores, 2 here): the in-process side uses them all in every
// stage. The services split them: pipelined (lag 1), the learner trains on one core while the
// worker and the reference (the worker waits for the reference's answer) keep the other busy,
// one thread each; the reward service's rule scorer uses no torch. Giving the learner 2 threads
// oversubscribes the cores while the worker generates (measured 1.09-1.11x against 0.76-1.01x).
// With --max_policy_lag=0 nothing overlaps: give every service all cores.
// Models: "stories260K" (skipped when missing) and "random", a Llama of --dim/--hidden_dim/
// --layers saved as an HF checkpoint, so that the comparison is about compute rather than
// process overheads; both use tok512 (the bench is skipped without it). The sides alternate for
// --rounds rounds and the summary takes each side's fastest (the machine is shared). JSON lines
// on stdout, progress on stderr, configs and service logs in --work_dir.
#include <httplib.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bench/ppo_iteration_in_process.h"
#include "common/checkpoint/hf.h"
#include "common/launch/service_process.h"
#include "common/logging/logging.h"
#include "common/model/llama.h"
#include "common/runtime/runtime.h"
#include "common/status/status_macros.h"
#include "common/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"
#include "services/learner/ppo_trainer.h"

ABSL_FLAG(std::string, models, "stories260K,random", "models to run: stories260K, random");
ABSL_FLAG(std::string, stories260k, RLHF_SOURCE_DIR "/../shared/models/stories260K.bin", "model");
ABSL_FLAG(std::string, tokenizer, RLHF_SOURCE_DIR "/../shared/models/tok512.model",
          "prompts' and reward texts' tokenizer; its vocabulary sizes 'random'");
ABSL_FLAG(int64_t, dim, 288, "'random': width of the residual stream");
ABSL_FLAG(int64_t, hidden_dim, 768, "'random': width of the SwiGLU MLP");
ABSL_FLAG(int64_t, layers, 6, "'random': transformer blocks");
ABSL_FLAG(int, batch_prompts, 8, "prompts per worker lease (one generation batch)");
ABSL_FLAG(int, worker_batches, 2, "leases per PPO step: batch_size = batch_prompts * this");
ABSL_FLAG(int, minibatch, 8, "trajectories per optimizer step");
ABSL_FLAG(int, epochs, 2, "PPO epochs per step");
ABSL_FLAG(int, max_new_tokens, 32, "tokens sampled per response at most");
ABSL_FLAG(int, max_policy_lag, 1, "learner max_policy_lag (0 = no pipelining; see the top)");
ABSL_FLAG(int, warmup, 2, "iterations not timed (>= 1)");
ABSL_FLAG(int, iterations, 6, "timed iterations");
ABSL_FLAG(int, rounds, 3, "rounds of (in-process, multi-process)");
ABSL_FLAG(int, inprocess_threads, 2, "torch threads of the in-process side");
ABSL_FLAG(int, learner_threads, 1, "torch threads of the learner process");
ABSL_FLAG(int, worker_threads, 1, "torch threads of the rollout process");
ABSL_FLAG(int, reference_threads, 1, "torch threads of the reference process");
ABSL_FLAG(double, service_batch_wait_ms, 0, "reference/reward batching.max_wait_ms (1 worker)");
ABSL_FLAG(std::string, work_dir, "", "configs, logs, random checkpoint; empty = a temp dir");

namespace rlhf::bench {
namespace {

namespace fs = std::filesystem;
using absl::GetFlag;
using nlohmann::json;

constexpr double kGoal = 1.10;  // multi-process time / in-process time


int BatchSize() { return GetFlag(FLAGS_batch_prompts) * GetFlag(FLAGS_worker_batches); }

json Threads() {
  return {{"in_process", GetFlag(FLAGS_inprocess_threads)},
          {"learner", GetFlag(FLAGS_learner_threads)},
          {"worker", GetFlag(FLAGS_worker_threads)},
          {"reference", GetFlag(FLAGS_reference_threads)},
          {"reward", 1}};
}

// Returns the checkpoint path of model `name` (writing the random one under `dir`).
absl::StatusOr<std::string> PrepareModel(const std::string& name, int64_t vocab,
                                         const std::string& dir) {
  if (name == "stories260K") {
    const std::string path = GetFlag(FLAGS_stories260k);
    if (!fs::exists(path)) return absl::NotFoundError(absl::StrCat(path, " is missing"));
    return path;
  }
  if (name != "random") return absl::InvalidArgumentError(absl::StrCat("unknown model ", name));
  model::LlamaConfig c;
  c.dim = GetFlag(FLAGS_dim);
  c.hidden_dim = GetFlag(FLAGS_hidden_dim);
  c.n_layers = GetFlag(FLAGS_layers);
  c.n_heads = c.n_kv_heads = c.dim / 48;  // head_dim 48, as llama2.c stories15M
  c.vocab_size = vocab;
  c.max_seq_len = 256;
  c.tie_embeddings = true;
  RLHF_ASSIGN_OR_RETURN(model::Llama m, model::CreateRandomLlama(c, 1));
  const std::string path = dir + "/random-model";
  RLHF_RETURN_IF_ERROR(checkpoint::SaveHfLlama(m, path, torch::kFloat32));
  return path;
}

// Writes <dir>/prompts.jsonl (shaped like the fixture's stories, as tests/ppo_e2e_test.cc) and
// <dir>/{learner,rollout,reward,reference}.json, the configs of both sides.
void WriteConfigs(const std::string& model, const std::string& dir) {
  std::ofstream prompts(dir + "/prompts.jsonl");
  const char* starts[] = {"Once upon a time", "Tom",     "The dog",    "She said", "Lily",
                          "One day",          "The sun", "Ben and Mia"};
  for (int i = 0; i < 32; ++i) prompts << json{{"prompt", starts[i % 8]}}.dump() << "\n";
  const json batching = {{"max_wait_ms", GetFlag(FLAGS_service_batch_wait_ms)}};
  const json quick_stop = {{"shutdown_grace_seconds", 1}};
  const std::string tokenizer = GetFlag(FLAGS_tokenizer);
  const int batch_prompts = GetFlag(FLAGS_batch_prompts);
  // clang-format off
  const json sections = {
      {"learner",
       {{"policy", model}, {"tokenizer", tokenizer}, {"prompts", dir + "/prompts.jsonl"},
        // One step more than read: the loop is still busy while the last timed step is read.
        {"total_steps", GetFlag(FLAGS_warmup) + GetFlag(FLAGS_iterations) + 1},
        {"lease_seconds", 60}, {"max_queue", BatchSize()},
        {"max_policy_lag", GetFlag(FLAGS_max_policy_lag)},
        {"threads", GetFlag(FLAGS_learner_threads)}, {"seed", 7}, {"server", quick_stop},
        {"sampling", {{"temperature", 1.0}, {"max_new_tokens", GetFlag(FLAGS_max_new_tokens)}}},
        {"ppo", {{"batch_size", BatchSize()}, {"minibatch_size", GetFlag(FLAGS_minibatch)},
                 {"epochs", GetFlag(FLAGS_epochs)}, {"learning_rate", 1e-4},
                 {"critic_learning_rate", 1e-3}, {"init_kl_coef", 0.1}, {"kl_target", 4},
                 {"kl_horizon", 320}, {"seed", 7}}}}},
      // max_unacked = one lease, so that the worker runs as little ahead as it can.
      {"rollout",
       {{"model", model}, {"tokenizer", tokenizer}, {"server", quick_stop},
        {"threads", GetFlag(FLAGS_worker_threads)},
        {"worker", {{"batch_prompts", batch_prompts}, {"max_unacked", batch_prompts}}}}},
      {"reward",  // the rule scorer does no torch work
       {{"threads", 1}, {"batching", batching},
        {"rules", {{{"kind", "TEXT_SHARE"}, {"word", "ver"}, {"weight", 10}}}}}},
      {"reference",
       {{"model", model}, {"threads", GetFlag(FLAGS_reference_threads)}, {"batching", batching}}}};
  // clang-format on
  for (const auto& [name, config] : sections.items()) {
    std::ofstream(absl::StrCat(dir, "/", name, ".json")) << config.dump(2);
  }
}

// Sums the samples of metric `name` whose line contains `label` (Prometheus text format).
double MetricSum(const std::string& text, const std::string& name, const std::string& label) {
  double sum = 0;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name, 0) != 0 || line.find(label) == std::string::npos) continue;
    const char next = line[name.size()];
    if (next == ' ' || next == '{') sum += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return sum;
}

// CPU seconds used so far by the whole machine (/proc/stat, steal included) and by `pids`
// (/proc/<pid>/stat utime + stime), to tell how many cores other processes took during a side.
std::pair<double, double> CpuSeconds(const std::vector<pid_t>& pids) {
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  std::ifstream stat("/proc/stat");
  std::string cpu;
  double user, nice, system, idle, iowait, irq, softirq, steal;
  stat >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
  double own = 0;
  for (pid_t pid : pids) {
    std::string line;
    std::getline(std::ifstream(absl::StrCat("/proc/", pid, "/stat")), line);
    // Fields after "(comm) ": state ppid ... utime (12th) stime (13th).
    std::vector<std::string> f = absl::StrSplit(line.substr(line.rfind(')') + 2), ' ');
    if (f.size() > 12) own += (std::stod(f[11]) + std::stod(f[12])) / tick;
  }
  return {(user + nice + system + irq + softirq + steal) / tick, own};
}

// Cores used on average by other processes between `before` (a CpuSeconds) and now.
double OtherCores(const std::pair<double, double>& before, const std::vector<pid_t>& pids,
                  double wall_seconds) {
  const auto [machine, own] = CpuSeconds(pids);
  return (machine - before.first - (own - before.second)) / wall_seconds;
}

std::string Scrape(const launch::ServiceProcess& p) {
  httplib::Client client("127.0.0.1", p.metrics_port());
  auto res = client.Get("/metrics");
  if (!res || res->status != 200) LOG(WARNING) << "no /metrics from " << p.name();
  return res && res->status == 200 ? res->body : "";
}

using Services = std::map<std::string, std::unique_ptr<launch::ServiceProcess>>;

// Cumulative seconds of each stage (and trajectories generated), from the services' metrics.
std::map<std::string, double> Stages(const Services& s) {
  const std::string learner = Scrape(*s.at("learner")), worker = Scrape(*s.at("rollout-0"));
  const std::string latency = "rlhf_rpc_latency_seconds_sum";
  return {{"generate", MetricSum(worker, "rlhf_rollout_generation_seconds_sum", "")},
          {"reference_rpc", MetricSum(Scrape(*s.at("reference")), latency, "Reference/LogProbs")},
          {"reward_rpc", MetricSum(Scrape(*s.at("reward")), latency, "Reward/Score")},
          {"worker_push_blocked", MetricSum(worker, "rlhf_rollout_push_blocked_seconds_total", "")},
          {"weight_sync_rpc", MetricSum(learner, latency, "Learner/GetWeights")},
          {"lease_rpc", MetricSum(learner, latency, "Learner/LeasePrompts")},
          {"learner_step", MetricSum(learner, "rlhf_learner_step_seconds_sum", "")},
          {"generated_per_iteration",
           MetricSum(worker, "rlhf_rollout_trajectories_generated_total", "")}};
}

absl::StatusOr<json> RunMultiProcess(const std::string& dir) {
  const int warmup = GetFlag(FLAGS_warmup), iterations = GetFlag(FLAGS_iterations);
  Services s;
  auto start = [&](const std::string& name, const std::string& binary, const std::string& service,
                   std::vector<std::string> overrides = {}) {
    const std::string config = name == "rollout-0" ? "rollout" : name;
    auto p = launch::ServiceProcess::Start({name, binary, absl::StrCat(dir, "/", config, ".json"),
                                            std::move(overrides),
                                            absl::StrCat(dir, "/", name, ".log"), service});
    if (p.ok()) s[name] = std::move(*p);
    return p.status();
  };
  RLHF_RETURN_IF_ERROR(start("reward", RLHF_REWARD_BIN, "rlhf.v1.Reward"));
  RLHF_RETURN_IF_ERROR(start("reference", RLHF_REFERENCE_BIN, "rlhf.v1.Reference"));
  RLHF_RETURN_IF_ERROR(start("learner", RLHF_LEARNER_BIN, "rlhf.v1.Learner"));
  RLHF_RETURN_IF_ERROR(
      start("rollout-0", RLHF_ROLLOUT_BIN, "rlhf.v1.Rollout",
            {"worker.learner=" + s["learner"]->address(), "worker.reward=" + s["reward"]->address(),
             "worker.reference=" + s["reference"]->address(), "worker.worker_id=worker-0"}));
  Clock::time_point t0;
  std::vector<pid_t> pids = {getpid()};
  for (const auto& [name, p] : s) pids.push_back(p->process().pid());
  std::pair<double, double> cpu0;
  std::map<std::string, double> before;
  json ledger0, last;
  double tokens = 0;
  for (int step = 0; step < warmup + iterations;) {
    absl::StatusOr<std::string> line = s["learner"]->ReadLine(absl::Minutes(10));
    if (!line.ok()) {
      return absl::Status(line.status().code(),
                          absl::StrCat("learner: ", line.status().message(), "\n",
                                       launch::TailOfFile(s["learner"]->log_path())));
    }
    const json e = json::parse(*line, nullptr, /*allow_exceptions=*/false);
    if (e.is_discarded() || e.value("event", "") != "step") continue;
    step = e["step"].get<int>();
    LOG(INFO) << "multi-process: step " << step << " (" << e["step_seconds"] << " s training)";
    if (step == warmup) {
      t0 = Clock::now();
      cpu0 = CpuSeconds(pids);
      before = Stages(s);
      ledger0 = e["ledger"];
    } else if (step > warmup) {
      tokens += e["tokens"].get<double>();
      last = e;
    }
  }
  const double seconds = Seconds(t0) / iterations;
  const double other_cores = OtherCores(cpu0, pids, seconds * iterations);
  json stages;
  for (const auto& [k, v] : Stages(s)) stages[k] = (v - before[k]) / iterations;
  auto delta = [&](const char* k) { return last["ledger"][k].get<int>() - ledger0[k].get<int>(); };
  for (const char* name : {"rollout-0", "learner", "reference", "reward"}) {
    (void)s[name]->Stop(absl::Seconds(10));
  }
  return json{{"side", "multi_process"},
              {"seconds_per_iteration", seconds},
              {"tokens_per_iteration", tokens / iterations},
              {"tokens_per_s", tokens / iterations / seconds},
              {"stages_seconds_per_iteration", stages},
              {"stale_dropped", delta("stale_on_arrival") + delta("stale_at_pop")},
              {"consumed", delta("consumed")},
              {"other_processes_cores", other_cores}};
}

absl::StatusOr<json> RunInProcess(const std::string& dir) {
  const int warmup = GetFlag(FLAGS_warmup), iterations = GetFlag(FLAGS_iterations);
  at::set_num_threads(GetFlag(FLAGS_inprocess_threads));
  RLHF_ASSIGN_OR_RETURN(
      std::unique_ptr<InProcessLoop> loop,
      InProcessLoop::Create(dir + "/learner.json", dir + "/reward.json",
                            GetFlag(FLAGS_batch_prompts), GetFlag(FLAGS_worker_batches)));
  double total = 0, tokens = 0;
  std::pair<double, double> cpu0;
  for (int it = 0; it < warmup + iterations; ++it) {
    if (it == warmup) {
      loop->stage_seconds().clear();
      cpu0 = CpuSeconds({getpid()});
    }
    const Clock::time_point start = Clock::now();
    RLHF_ASSIGN_OR_RETURN(learner::PpoStepStats stats, loop->Iteration());
    const double seconds = Seconds(start);
    LOG(INFO) << "in-process: step " << stats.step << " in " << seconds << " s";
    if (it < warmup) continue;
    total += seconds;
    tokens += static_cast<double>(stats.tokens);
  }
  json stages;
  for (const auto& [k, v] : loop->stage_seconds()) stages[k] = v / iterations;
  return json{{"side", "in_process"},
              {"seconds_per_iteration", total / iterations},
              {"tokens_per_iteration", tokens / iterations},
              {"tokens_per_s", tokens / total},
              {"stages_seconds_per_iteration", stages},
              {"other_processes_cores", OtherCores(cpu0, {getpid()}, total)}};
}

// Runs --rounds rounds of both sides on `model_name`; returns false when a side failed.
bool BenchModel(const std::string& model_name, int64_t vocab, const std::string& work_dir) {
  const std::string dir = absl::StrCat(work_dir, "/", model_name);
  fs::create_directories(dir);
  absl::StatusOr<std::string> model = PrepareModel(model_name, vocab, dir);
  if (!model.ok()) {
    LOG(ERROR) << model.status();
    Print({{"bench", "ppo_iteration"},
           {"model", model_name},
           {"skipped", model.status().ToString()}});
    return absl::IsNotFound(model.status());
  }
  WriteConfigs(*model, dir);
  std::map<std::string, json> best;  // side -> its fastest round
  for (int round = 0; round < GetFlag(FLAGS_rounds); ++round) {
    for (auto run : {&RunInProcess, &RunMultiProcess}) {
      double load = -1;
      getloadavg(&load, 1);
      absl::StatusOr<json> side = run(dir);
      if (!side.ok()) {
        LOG(ERROR) << model_name << ": " << side.status() << " (logs in " << dir << ")";
        return false;
      }
      json& r = *side;
      r.update({{"bench", "ppo_iteration"},
                {"model", model_name},
                {"round", round},
                {"loadavg_1m_before", load}});
      Print(r);
      json& b = best[r["side"].get<std::string>()];
      if (b.is_null() || r["seconds_per_iteration"] < b["seconds_per_iteration"]) b = r;
    }
  }
  if (model_name == "random") fs::remove_all(*model);  // keep the logs, not the weights
  const json &multi = best["multi_process"], &single = best["in_process"];
  const double ratio =
      multi["seconds_per_iteration"].get<double>() / single["seconds_per_iteration"].get<double>();
  Print({{"bench", "ppo_iteration"},
         {"summary", true},
         {"model", model_name},
         {"multi_process_seconds", multi["seconds_per_iteration"]},
         {"in_process_seconds", single["seconds_per_iteration"]},
         {"multi_process_tokens_per_s", multi["tokens_per_s"]},
         {"in_process_tokens_per_s", single["tokens_per_s"]},
         {"ratio", ratio},
         {"goal_ratio", kGoal},
         {"meets_goal", ratio <= kGoal},
         {"pipelined", GetFlag(FLAGS_max_policy_lag) > 0},
         // Cores other processes took during the rounds above: > ~0.2 means a noisy result.
         {"other_processes_cores",
          {{"multi_process", multi["other_processes_cores"]},
           {"in_process", single["other_processes_cores"]}}},
         {"multi_process_stale_per_iteration",
          multi["stale_dropped"].get<double>() / GetFlag(FLAGS_iterations)},
         {"threads", Threads()}});
  return true;
}

int Main() {
  auto tokenizer = tokenizer::LoadTokenizer(GetFlag(FLAGS_tokenizer));
  if (!tokenizer.ok()) {
    LOG(ERROR) << tokenizer.status();
    Print({{"bench", "ppo_iteration"}, {"skipped", tokenizer.status().ToString()}});
    return absl::IsNotFound(tokenizer.status()) ? 0 : 1;
  }
  std::string work_dir = GetFlag(FLAGS_work_dir);
  if (work_dir.empty()) {
    work_dir = absl::StrCat(fs::temp_directory_path().string(), "/ppo_iteration_bench_", getpid());
  }
  json config = {{"batch_size", BatchSize()}};
  for (const char* name : {"batch_prompts", "worker_batches", "minibatch", "epochs",
                           "max_new_tokens", "max_policy_lag", "warmup", "iterations", "rounds",
                           "service_batch_wait_ms", "dim", "hidden_dim", "layers"}) {
    config[name] = json::parse(absl::FindCommandLineFlag(name)->CurrentValue());
  }
  Print({{"bench", "ppo_iteration"},
         {"config", config},
         {"threads", Threads()},
         {"cpus", runtime::AllowedCpuCount()},
         {"blas", runtime::BlasDescription()},
         {"work_dir", work_dir}});
  bool ok = true;
  for (absl::string_view m : absl::StrSplit(GetFlag(FLAGS_models), ',')) {
    ok = BenchModel(std::string(m), (*tokenizer)->vocab_size(), work_dir) && ok;
  }
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace rlhf::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  rlhf::logging::Init(argv[0]);
  if (absl::GetFlag(FLAGS_warmup) < 1 || absl::GetFlag(FLAGS_iterations) < 1 ||
      absl::GetFlag(FLAGS_rounds) < 1) {
    std::fprintf(stderr, "--warmup, --iterations and --rounds must be >= 1\n");
    return 2;
  }
  // The services' allocator tuning for the in-process side too (each side sets its threads).
  if (auto s = rlhf::runtime::InitTorchRuntime(absl::GetFlag(FLAGS_inprocess_threads)); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 2;
  }
  return rlhf::bench::Main();
}
