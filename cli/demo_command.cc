#include "cli/demo_command.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "cli/demo_eval.h"
#include "cli/demo_report.h"
#include "cli/demo_settings.h"
#include "cli/job_util.h"
#include "common/launch/service_process.h"
#include "common/process/subprocess.h"
#include "common/status/status_macros.h"
#include "common/tokenizer/tokenizer.h"
#include "common/world/world.h"
#include "common/world/world_files.h"

namespace rlhf::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string Str(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

absl::StatusOr<json> ReadJson(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  json j = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(path, ": not JSON"));
  return j;
}

// Concatenates JSONL files.
absl::Status Concatenate(const std::vector<std::string>& inputs, const std::string& out) {
  std::ofstream o(out, std::ios::trunc);
  for (const std::string& in : inputs) {
    std::ifstream i(in);
    if (!i) return absl::NotFoundError(absl::StrCat("cannot read ", in));
    o << i.rdbuf();
  }
  o.close();
  if (!o) return absl::InternalError(absl::StrCat("cannot write ", out));
  return absl::OkStatus();
}

class Demo {
 public:
  Demo(const DemoArgs& a) : args_(a), settings_(DemoSettings(a)), start_(absl::Now()) {}

  absl::Status Run();

 private:
  std::string Dir(const std::string& stage) const { return absl::StrCat(args_.out, "/", stage); }
  void Say(const std::string& stage, const std::string& what) const {
    std::printf("[%6.0fs] %-10s %s\n", absl::ToDoubleSeconds(absl::Now() - start_), stage.c_str(),
                what.c_str());
    std::fflush(stdout);
  }

  std::string Fingerprint(const std::string& stage) const {
    return StageFingerprint(settings_, stage);
  }

  // A finished stage's facts, or nullopt when it must (re)run.
  std::optional<json> Finished(const std::string& stage) const {
    if (args_.fresh) return std::nullopt;
    absl::StatusOr<json> done = ReadJson(Dir(stage) + "/done.json");
    if (!done.ok() || !done->contains("fingerprint") ||
        (*done)["fingerprint"] != Fingerprint(stage)) {
      return std::nullopt;
    }
    return (*done)["facts"];
  }
  absl::Status MarkDone(const std::string& stage, json facts) {
    facts["wall_seconds"] = facts.value("wall_seconds", 0.0);
    json done = {{"fingerprint", Fingerprint(stage)}, {"facts", facts}};
    return WriteJsonFile(Dir(stage) + "/done.json", done);
  }
  absl::Status Begin(const std::string& stage) {
    std::error_code ec;
    fs::remove_all(Dir(stage), ec);
    fs::create_directories(Dir(stage), ec);
    if (ec) return absl::InternalError(absl::StrCat("cannot create ", Dir(stage)));
    return absl::OkStatus();
  }

  // `rlhf <argv>` as a child process; its output in <stage>/<name>.log.
  absl::Status Job(const std::string& stage, const std::string& name,
                   const std::vector<std::string>& argv);
  // A service process (rollout, reward, reference) serving `config`.
  absl::StatusOr<std::unique_ptr<launch::ServiceProcess>> Service(const std::string& stage,
                                                                  const std::string& name,
                                                                  const json& config);

  // Stages.
  absl::Status World();
  absl::StatusOr<json> Pretrain();
  absl::StatusOr<json> Sft(const std::string& stage, const std::string& data,
                           const std::string& init, const std::string& epochs_key);
  absl::StatusOr<json> RewardModel(const std::string& stage, const std::vector<std::string>& data);
  absl::StatusOr<json> Rl(const std::string& stage, const std::string& policy,
                          const std::string& rm);
  absl::StatusOr<json> SlCai(const std::string& sft, const std::string& base);
  absl::StatusOr<json> RlCaiLabels(const std::string& sl_cai, const std::string& base);
  absl::StatusOr<json> Evaluate(const std::string& stage, const std::string& policy,
                                const std::string& rm, const std::string& reference);

  // Runs `body` unless the stage is finished; returns its facts.
  absl::StatusOr<json> Stage(const std::string& stage,
                             const std::function<absl::StatusOr<json>()>& body) {
    if (std::optional<json> facts = Finished(stage)) {
      Say(stage, "reused (finished earlier with these settings)");
      return *facts;
    }
    RLHF_RETURN_IF_ERROR(Begin(stage));
    const absl::Time t0 = absl::Now();
    RLHF_ASSIGN_OR_RETURN(json facts, body());
    facts["wall_seconds"] = absl::ToDoubleSeconds(absl::Now() - t0);
    RLHF_RETURN_IF_ERROR(MarkDone(stage, facts));
    Say(stage, absl::StrFormat("done in %.0f s", facts["wall_seconds"].get<double>()));
    return facts;
  }

  const DemoArgs args_;
  const json settings_;
  const absl::Time start_;
  std::string self_;
  std::unique_ptr<world::World> world_;
  world::WorldFiles files_;
  std::unique_ptr<tokenizer::Tokenizer> tok_;
};

absl::Status Demo::Job(const std::string& stage, const std::string& name,
                       const std::vector<std::string>& argv) {
  std::vector<std::string> full = {self_};
  full.insert(full.end(), argv.begin(), argv.end());
  const std::string log = absl::StrCat(Dir(stage), "/", name, ".log");
  {
    std::ofstream l(log, std::ios::app);
    l << "$ rlhf " << absl::StrJoin(argv, " ") << "\n";
  }
  process::SubprocessOptions o;
  o.stderr_path = log;
  RLHF_ASSIGN_OR_RETURN(auto child, process::Subprocess::Start(full, o));
  std::ofstream out(log, std::ios::app);
  while (true) {  // drain stdout into the log
    absl::StatusOr<std::string> line = child->ReadLine(absl::Hours(24));
    if (!line.ok()) break;
    out << *line << "\n";
    out.flush();
  }
  RLHF_ASSIGN_OR_RETURN(int code, child->Wait(absl::Hours(24)));
  if (code != 0) {
    return absl::AbortedError(absl::StrCat("rlhf ", argv[0], " (", name, ") exited with status ",
                                           code, "; the end of ", log, ":\n",
                                           launch::TailOfFile(log, 15)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<launch::ServiceProcess>> Demo::Service(const std::string& stage,
                                                                      const std::string& name,
                                                                      const json& config) {
  const std::string path = absl::StrCat(Dir(stage), "/", name, ".json");
  RLHF_RETURN_IF_ERROR(WriteJsonFile(path, config));
  launch::ServiceProcessOptions o;
  o.name = name;
  const std::string binary = name.substr(0, name.find('-'));
  RLHF_ASSIGN_OR_RETURN(o.binary, launch::FindServiceBinary(args_.bin_dir, binary));
  o.config_path = path;
  o.log_path = absl::StrCat(Dir(stage), "/", name, ".log");
  o.health_service = binary == "rollout"  ? "rlhf.v1.Rollout"
                     : binary == "reward" ? "rlhf.v1.Reward"
                                          : "rlhf.v1.Reference";
  return launch::ServiceProcess::Start(o);
}

json ServerQuiet() { return {{"shutdown_grace_seconds", 1}}; }

absl::Status Demo::World() {
  world_ = std::make_unique<world::World>(WorldOptionsFrom(settings_));
  const std::string dir = Dir("world");
  const bool reuse = Finished("world").has_value();
  if (!reuse) {
    RLHF_RETURN_IF_ERROR(Begin("world"));
  }
  RLHF_ASSIGN_OR_RETURN(files_,
                        world::WriteWorld(*world_, dir, settings_["redteam_repeats"].get<int>(),
                                          settings_["ai_label_repeats"].get<int>()));
  RLHF_ASSIGN_OR_RETURN(tok_, tokenizer::LoadTokenizer(files_.tokenizer));
  if (!reuse) {
    RLHF_RETURN_IF_ERROR(MarkDone("world", {{"vocab_size", files_.vocab_size},
                                            {"train_prompts", world_->train().size()},
                                            {"eval_prompts", world_->eval().size()}}));
  }
  Say("world",
      absl::StrFormat("%zu train / %zu held-out prompts, %d-word vocabulary, in %s",
                      world_->train().size(), world_->eval().size(), files_.vocab_size, dir));
  return absl::OkStatus();
}

absl::StatusOr<json> Demo::Pretrain() {
  const json& s = settings_;
  RLHF_RETURN_IF_ERROR(Job("base", "pretrain",
                           {"sft",
                            "--data",
                            files_.corpus,
                            "--tokenizer",
                            files_.tokenizer,
                            "--dim",
                            Str(s["dim"]),
                            "--layers",
                            Str(s["layers"]),
                            "--heads",
                            Str(s["heads"]),
                            "--hidden-dim",
                            Str(s["hidden_dim"]),
                            "--max-seq-len",
                            Str(s["max_seq_len"]),
                            "--epochs",
                            Str(s["pretrain_epochs"]),
                            "--batch",
                            Str(s["pretrain_batch"]),
                            "--micro-batch",
                            Str(s["pretrain_batch"]),
                            "--lr",
                            Str(s["pretrain_lr"]),
                            "--warmup",
                            Str(s["pretrain_warmup"]),
                            "--eval-fraction",
                            "0.01",
                            "--seed",
                            Str(s["seed"]),
                            "--checkpoint-every",
                            "0",
                            "--out",
                            Dir("base") + "/model"}));
  RLHF_ASSIGN_OR_RETURN(json facts, ReadJson(Dir("base") + "/model/training.json"));
  return json{{"model", Dir("base") + "/model"}, {"training", facts}};
}

absl::StatusOr<json> Demo::Sft(const std::string& stage, const std::string& data,
                               const std::string& init, const std::string& epochs_key) {
  const json& s = settings_;
  RLHF_RETURN_IF_ERROR(Job(stage, "sft",
                           {"sft",
                            "--init",
                            init,
                            "--data",
                            data,
                            "--tokenizer",
                            files_.tokenizer,
                            "--epochs",
                            Str(s[epochs_key]),
                            "--batch",
                            Str(s["sft_batch"]),
                            "--micro-batch",
                            Str(s["sft_batch"]),
                            "--lr",
                            Str(s["sft_lr"]),
                            "--warmup",
                            "0",
                            "--eval-fraction",
                            "0",
                            "--seed",
                            Str(s["seed"]),
                            "--checkpoint-every",
                            "0",
                            "--out",
                            Dir(stage) + "/model"}));
  RLHF_ASSIGN_OR_RETURN(json facts, ReadJson(Dir(stage) + "/model/training.json"));
  return json{{"model", Dir(stage) + "/model"}, {"training", facts}};
}

absl::StatusOr<json> Demo::RewardModel(const std::string& stage,
                                       const std::vector<std::string>& data) {
  const json& s = settings_;
  const std::string all = Dir(stage) + "/pairs.jsonl";
  RLHF_RETURN_IF_ERROR(Concatenate(data, all));
  RLHF_RETURN_IF_ERROR(Job(stage, "train-rm",
                           {"train-rm",
                            "--init",
                            Dir("base") + "/model",
                            "--train",
                            all,
                            "--tokenizer",
                            files_.tokenizer,
                            "--epochs",
                            Str(s["rm_epochs"]),
                            "--batch",
                            Str(s["rm_batch"]),
                            "--micro-batch",
                            Str(s["rm_batch"]),
                            "--lr",
                            Str(s["rm_lr"]),
                            "--warmup",
                            "10",
                            "--normalize",
                            "--max-bad",
                            "1000000",
                            "--seed",
                            Str(s["seed"]),
                            "--checkpoint-every",
                            "0",
                            "--out",
                            Dir(stage) + "/rm"}));
  RLHF_ASSIGN_OR_RETURN(json facts, ReadJson(Dir(stage) + "/rm/training.json"));
  return json{{"rm", Dir(stage) + "/rm"}, {"training", facts}};
}

absl::StatusOr<json> Demo::Rl(const std::string& stage, const std::string& policy,
                              const std::string& rm) {
  const json& s = settings_;
  const std::string run = Dir(stage) + "/run";
  json config = RlLocalConfig(settings_, run, policy, rm, files_.tokenizer, files_.train_prompts);
  if (!args_.bin_dir.empty()) config["bin_dir"] = args_.bin_dir;
  const std::string path = Dir(stage) + "/local.json";
  RLHF_RETURN_IF_ERROR(WriteJsonFile(path, config));
  Say(stage, absl::StrFormat("%s RL from %s: %d steps of %d prompts x %d samples",
                             Str(s["advantage"]), policy, s["rl_steps"].get<int>(),
                             s["rl_prompts_per_step"].get<int>(), s["rl_group"].get<int>()));
  RLHF_RETURN_IF_ERROR(Job(stage, "local", {"local", "--config", path}));
  // The final checkpoint's policy, and the learner's step events (for the charts).
  std::ifstream latest(run + "/checkpoints/latest");
  std::string name;
  std::getline(latest, name);
  if (name.empty()) return absl::InternalError(absl::StrCat(run, "/checkpoints/latest is missing"));
  json steps = json::array();
  std::ifstream events(run + "/steps.jsonl");
  for (std::string line; std::getline(events, line);) {
    json e = json::parse(line, nullptr, false);
    if (e.is_discarded() || e.value("event", "") != "step") continue;
    steps.push_back({{"step", e["step"]},
                     {"reward", e["reward_mean"]},
                     {"kl", e["kl_mean"]},
                     {"length", e["response_length_mean"]}});
  }
  return json{{"policy", run + "/checkpoints/" + name + "/policy"}, {"steps", steps}};
}

absl::StatusOr<json> Demo::SlCai(const std::string& sft, const std::string& base) {
  const json& s = settings_;
  const std::string revisions = Dir("sl_cai") + "/revisions.jsonl";
  // The revisions are mixed with the SFT demonstrations, all of them.
  double revisions_n = 0;
  for (const world::Prompt& p : world_->train()) revisions_n += p.kind == world::Kind::kHarmful;
  revisions_n *= s["redteam_repeats"].get<double>();
  const double demos = s["sft_demos"].get<double>();
  {
    RLHF_ASSIGN_OR_RETURN(
        auto rollout,
        Service("sl_cai", "rollout",
                {{"server", ServerQuiet()}, {"model", sft}, {"tokenizer", files_.tokenizer}}));
    RLHF_RETURN_IF_ERROR(Job("sl_cai", "cai-revise",
                             {"cai-revise",
                              "--rollout",
                              rollout->address(),
                              "--prompts",
                              files_.redteam_prompts,
                              "--constitution",
                              files_.constitution,
                              "--rounds",
                              Str(s["revise_rounds"]),
                              "--helpful",
                              files_.demonstrations,
                              "--helpful-fraction",
                              absl::StrCat(demos / (demos + revisions_n)),
                              "--max-new-tokens",
                              Str(s["max_new_tokens"]),
                              "--temperature",
                              "1",
                              "--seed",
                              Str(s["seed"]),
                              "--batch",
                              "64",
                              "--out",
                              revisions}));
  }
  RLHF_ASSIGN_OR_RETURN(json facts, Sft("sl_cai", revisions, base, "sl_cai_epochs"));
  return facts;
}

absl::StatusOr<json> Demo::RlCaiLabels(const std::string& sl_cai, const std::string& base) {
  const json& s = settings_;
  RLHF_ASSIGN_OR_RETURN(
      auto rollout,
      Service("rl_cai_labels", "rollout",
              {{"server", ServerQuiet()}, {"model", sl_cai}, {"tokenizer", files_.tokenizer}}));
  // The feedback model is the pretrained base model, as in the paper.
  RLHF_ASSIGN_OR_RETURN(auto reference, Service("rl_cai_labels", "reference",
                                                {{"server", ServerQuiet()}, {"model", base}}));
  const std::vector<std::string> common = {"--principles",
                                           files_.feedback_principles,
                                           "--cot",
                                           files_.cot_examples,
                                           "--clamp-low",
                                           "0",
                                           "--clamp-high",
                                           "1",
                                           "--both-orders",
                                           "--reference",
                                           reference->address(),
                                           "--rollout",
                                           rollout->address(),
                                           "--tokenizer",
                                           files_.tokenizer,
                                           "--max-new-tokens",
                                           Str(s["max_new_tokens"]),
                                           "--temperature",
                                           "1",
                                           "--seed",
                                           Str(s["seed"]),
                                           "--batch",
                                           "64"};
  const std::string policy_labels = Dir("rl_cai_labels") + "/labels_policy.jsonl";
  const std::string redteam_labels = Dir("rl_cai_labels") + "/labels_redteam.jsonl";
  std::vector<std::string> a = {"cai-label", "--prompts", files_.ai_label_prompts, "--out",
                                policy_labels};
  a.insert(a.end(), common.begin(), common.end());
  RLHF_RETURN_IF_ERROR(Job("rl_cai_labels", "cai-label-policy", a));
  std::vector<std::string> b = {"cai-label", "--prompts", files_.redteam_pairs, "--out",
                                redteam_labels};
  b.insert(b.end(), common.begin(), common.end());
  RLHF_RETURN_IF_ERROR(Job("rl_cai_labels", "cai-label-redteam", b));
  return json{{"labels", {policy_labels, redteam_labels}}};
}

absl::StatusOr<json> Demo::Evaluate(const std::string& stage, const std::string& policy,
                                    const std::string& rm, const std::string& reference) {
  const std::string dir = stage;
  RLHF_ASSIGN_OR_RETURN(
      auto rollout,
      Service(dir, "rollout",
              {{"server", ServerQuiet()}, {"model", policy}, {"tokenizer", files_.tokenizer}}));
  std::unique_ptr<launch::ServiceProcess> reward, ref;
  if (!rm.empty()) {
    RLHF_ASSIGN_OR_RETURN(reward,
                          Service(dir, "reward", {{"server", ServerQuiet()}, {"model", rm}}));
  }
  if (!reference.empty()) {
    RLHF_ASSIGN_OR_RETURN(
        ref, Service(dir, "reference", {{"server", ServerQuiet()}, {"model", reference}}));
  }
  StageEvalOptions o;
  o.rollout = rollout->address();
  if (reward) o.reward = reward->address();
  if (ref) o.reference = ref->address();
  o.tokenizer = tok_.get();
  o.samples = settings_["eval_samples"];
  o.temperature = settings_["eval_temperature"];
  o.max_new_tokens = settings_["max_new_tokens"];
  o.seed = settings_["seed"].get<uint64_t>() + 123;
  RLHF_ASSIGN_OR_RETURN(StageEval e, EvaluateStage(*world_, o));
  json gold = json::object();
  for (const auto& [k, m] : e.gold) gold[k] = {{"mean", m.mean}, {"se", m.se}, {"n", m.n}};
  json out = {{"gold", gold},
              {"mean_tokens", e.mean_tokens},
              {"examples", e.examples},
              {"processes", {rollout->name(), reward ? "reward" : "", ref ? "reference" : ""}}};
  if (e.rm_score) out["rm_score"] = {{"mean", e.rm_score->mean}, {"se", e.rm_score->se}};
  if (e.kl) out["kl"] = *e.kl;
  return out;
}

absl::Status Demo::Run() {
  std::error_code ec;
  fs::create_directories(args_.out, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", args_.out, ": ", ec.message()));
  self_ = fs::read_symlink("/proc/self/exe", ec).string();
  if (ec) return absl::InternalError("cannot find this executable");
  std::printf("rlhf demo: %s run in %s (seed %llu)\n", args_.quick ? "quick" : "full",
              args_.out.c_str(), static_cast<unsigned long long>(args_.seed));
  RLHF_RETURN_IF_ERROR(World());
  const std::string rms_ref;  // RMs come from the base model

  RLHF_ASSIGN_OR_RETURN(json base, Stage("base", [&] { return Pretrain(); }));
  const std::string base_model = base["model"];
  RLHF_ASSIGN_OR_RETURN(json sft, Stage("sft", [&] {
                          return Sft("sft", files_.demonstrations, base_model, "sft_epochs");
                        }));
  const std::string sft_model = sft["model"];
  RLHF_ASSIGN_OR_RETURN(
      json rm_help, Stage("rm_help", [&] { return RewardModel("rm_help", {files_.help_pairs}); }));
  RLHF_ASSIGN_OR_RETURN(json rlhf_help, Stage("rlhf_help", [&] {
                          return Rl("rlhf_help", sft_model, rm_help["rm"]);
                        }));
  RLHF_ASSIGN_OR_RETURN(json rm_hh, Stage("rm_hh", [&] {
                          return RewardModel("rm_hh", {files_.help_pairs, files_.harm_pairs});
                        }));
  RLHF_ASSIGN_OR_RETURN(json rlhf_hh,
                        Stage("rlhf_hh", [&] { return Rl("rlhf_hh", sft_model, rm_hh["rm"]); }));
  RLHF_ASSIGN_OR_RETURN(json sl_cai, Stage("sl_cai", [&] { return SlCai(sft_model, base_model); }));
  const std::string sl_cai_model = sl_cai["model"];
  RLHF_ASSIGN_OR_RETURN(
      json labels, Stage("rl_cai_labels", [&] { return RlCaiLabels(sl_cai_model, base_model); }));
  RLHF_ASSIGN_OR_RETURN(json rm_cai, Stage("rm_cai", [&] {
                          std::vector<std::string> data = labels["labels"];
                          data.push_back(files_.help_pairs);
                          return RewardModel("rm_cai", data);
                        }));
  RLHF_ASSIGN_OR_RETURN(json rl_cai,
                        Stage("rl_cai", [&] { return Rl("rl_cai", sl_cai_model, rm_cai["rm"]); }));

  // Every policy on the same held-out prompts.
  struct Row {
    std::string stage, label, policy, rm, reference;
    json rl;
  };
  const std::vector<Row> rows = {
      {"base", "base (pretrained)", base_model, "", "", nullptr},
      {"sft", "SFT", sft_model, "", base_model, nullptr},
      {"rlhf_help", "RLHF (helpful)", rlhf_help["policy"], rm_help["rm"], sft_model, rlhf_help},
      {"rlhf_hh", "RLHF-HH", rlhf_hh["policy"], rm_hh["rm"], sft_model, rlhf_hh},
      {"sl_cai", "SL-CAI", sl_cai_model, "", base_model, nullptr},
      {"rl_cai", "RL-CAI", rl_cai["policy"], rm_cai["rm"], sl_cai_model, rl_cai},
  };
  json report = {{"settings", settings_}, {"stages", json::array()}};
  for (const Row& r : rows) {
    const std::string stage = "eval_" + r.stage;
    RLHF_ASSIGN_OR_RETURN(
        json e, Stage(stage, [&] { return Evaluate(stage, r.policy, r.rm, r.reference); }));
    json row = {{"stage", r.stage}, {"label", r.label}, {"eval", e}, {"policy", r.policy}};
    if (!r.rl.is_null()) row["rl_steps"] = r.rl["steps"];
    report["stages"].push_back(row);
  }
  json walls = json::object();
  for (const char* s : {"base", "sft", "rm_help", "rlhf_help", "rm_hh", "rlhf_hh", "sl_cai",
                        "rl_cai_labels", "rm_cai", "rl_cai"}) {
    if (auto f = Finished(s)) walls[s] = (*f)["wall_seconds"];
  }
  report["stage_wall_seconds"] = walls;
  report["wall_seconds"] = absl::ToDoubleSeconds(absl::Now() - start_);
  report["claims"] = DemoClaims(report);
  const std::string report_dir = args_.out + "/report";
  RLHF_RETURN_IF_ERROR(WriteDemoReport(report, report_dir));
  std::printf("\n%s\n", DemoTable(report).c_str());
  std::printf("rlhf demo: report in %s/index.html and %s/report.json (%.0f s)\n",
              report_dir.c_str(), report_dir.c_str(), absl::ToDoubleSeconds(absl::Now() - start_));
  return absl::OkStatus();
}

}  // namespace

CLI::App* AddDemoCommand(CLI::App& app, DemoArgs& a) {
  CLI::App* cmd = app.add_subcommand(
      "demo",
      "The RLHF and Constitutional AI story on a built-in world and tiny model: base, SFT, "
      "RLHF, RLHF-HH, SL-CAI, RL-CAI through the services, judged by gold raters");
  cmd->option_defaults()->always_capture_default();
  cmd->add_option("--out", a.out, "run directory (stages, logs, report)");
  cmd->add_flag("--quick", a.quick, "a small world and short stages: a smoke run (tests)");
  cmd->add_option("--seed", a.seed, "seed of the world and of every stage");
  cmd->add_option("--rl-steps", a.rl_steps, "RL steps per RL stage (0 = the preset's)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--fresh", a.fresh, "rerun every stage (default: reuse finished ones)");
  cmd->add_option("--bin-dir", a.bin_dir,
                  "directory of the service binaries (default: beside rlhf)");
  return cmd;
}

absl::Status RunDemo(const DemoArgs& args) { return Demo(args).Run(); }

}  // namespace rlhf::cli
