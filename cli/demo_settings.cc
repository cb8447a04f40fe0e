#include "cli/demo_settings.h"

#include <map>
#include <string>
#include <vector>

namespace rlhf::cli {

using nlohmann::json;

// Every knob of a run, recorded in the report (and the fingerprint that decides reuse).
json DemoSettings(const DemoArgs& a) {
  json s = {
      {"seed", a.seed},
      // World and its "human" raters.
      {"corpus_docs", 30000},
      {"sft_demos", 800},
      {"help_pairs", 3000},
      {"harm_pairs", 4000},
      {"help_flip", 0.15},
      {"harm_flip", 0.1},
      {"harm_terse_preference", 0.75},
      {"harm_borderline_refusal", 1.0},
      {"redteam_harmful_share", 0.4},
      // Model and pretraining.
      {"dim", 128},
      {"layers", 4},
      {"heads", 4},
      {"hidden_dim", 344},
      {"max_seq_len", 192},
      {"pretrain_epochs", 2.0},
      {"pretrain_batch", 64},
      {"pretrain_lr", 3e-3},
      {"pretrain_warmup", 100},
      // SFT (weak and imperfect on purpose) and reward models.
      {"sft_epochs", 1.0},
      {"sft_batch", 32},
      {"sft_lr", 1e-4},
      {"rm_epochs", 2.0},
      {"rm_batch", 32},
      {"rm_lr", 2e-4},
      // RL.
      {"advantage", "RLOO"},
      {"rl_steps", 200},
      {"rl_prompts_per_step", 16},
      {"rl_group", 4},
      {"rl_lr", 1e-4},
      {"kl_coef", 0.1},
      {"max_new_tokens", 32},
      {"missing_eos_penalty", 3.0},
      {"rollout_workers", 1},
      // Constitutional AI.
      {"redteam_repeats", 16},
      {"revise_rounds", 1},
      {"ai_label_repeats", 10},
      {"sl_cai_epochs", 1.0},
      // Evaluation.
      {"eval_samples", 4},
      {"eval_temperature", 1.0},
  };
  if (a.quick) {
    s.update({{"corpus_docs", 3000},
              {"sft_demos", 200},
              {"help_pairs", 300},
              {"harm_pairs", 300},
              {"dim", 64},
              {"layers", 2},
              {"hidden_dim", 172},
              {"pretrain_epochs", 1.0},
              {"rm_epochs", 1.0},
              {"pretrain_warmup", 10},
              {"rl_steps", 6},
              {"rl_prompts_per_step", 4},
              {"redteam_repeats", 1},
              {"ai_label_repeats", 1},
              {"eval_samples", 1}});
  }
  if (a.rl_steps > 0) s["rl_steps"] = a.rl_steps;
  s["quick"] = a.quick;
  return s;
}

world::WorldOptions WorldOptionsFrom(const json& s) {
  world::WorldOptions o;
  o.seed = s["seed"];
  o.corpus_docs = s["corpus_docs"];
  o.sft_demos = s["sft_demos"];
  o.help_pairs = s["help_pairs"];
  o.harm_pairs = s["harm_pairs"];
  o.help_flip = s["help_flip"];
  o.redteam_harmful_share = s["redteam_harmful_share"];
  o.harm_raters.flip = s["harm_flip"];
  o.harm_raters.terse_preference = s["harm_terse_preference"];
  o.harm_raters.borderline_refusal = s["harm_borderline_refusal"];
  return o;
}

// What a stage's result depends on: its settings and its inputs' fingerprints. A rerun reuses
// a finished stage whose fingerprint is unchanged.
std::string StageFingerprint(const json& settings, const std::string& stage) {
  // The world is rewritten on every run (it is cheap and deterministic); what each stage reads
  // of it is in that stage's keys.
  static const std::vector<std::string> kWorld = {"seed", "quick", "corpus_docs"};
  static const std::vector<std::string> kDemos = {"sft_demos"};
  static const std::vector<std::string> kHelp = {"help_pairs", "help_flip"};
  static const std::vector<std::string> kHarm = {"harm_pairs", "harm_flip",
                                                 "harm_terse_preference",
                                                 "harm_borderline_refusal",
                                                 "redteam_harmful_share"};
  static const std::vector<std::string> kRedteam = {"redteam_repeats", "sft_demos"};
  static const std::vector<std::string> kAiLabel = {"ai_label_repeats", "harm_pairs",
                                                    "redteam_harmful_share"};
  static const std::vector<std::string> kModel = {"dim",
                                                  "layers",
                                                  "heads",
                                                  "hidden_dim",
                                                  "max_seq_len",
                                                  "pretrain_epochs",
                                                  "pretrain_batch",
                                                  "pretrain_lr",
                                                  "pretrain_warmup"};
  static const std::vector<std::string> kSft = {"sft_epochs", "sft_batch", "sft_lr"};
  static const std::vector<std::string> kRm = {"rm_epochs", "rm_batch", "rm_lr"};
  static const std::vector<std::string> kRl = {
      "advantage", "rl_steps",       "rl_prompts_per_step", "rl_group",       "rl_lr",
      "kl_coef",   "max_new_tokens", "missing_eos_penalty", "rollout_workers"};
  static const std::vector<std::string> kCai = {"revise_rounds", "max_new_tokens", "sl_cai_epochs"};
  static const std::vector<std::string> kEval = {"eval_samples", "eval_temperature",
                                                 "max_new_tokens"};
  static const std::map<std::string, std::pair<std::vector<const std::vector<std::string>*>,
                                               std::vector<std::string>>>
      kStages = {
          {"world", {{&kWorld}, {}}},
          {"base", {{&kModel}, {"world"}}},
          {"sft", {{&kSft, &kDemos}, {"base"}}},
          {"rm_help", {{&kRm, &kHelp}, {"base"}}},
          {"rlhf_help", {{&kRl}, {"sft", "rm_help"}}},
          {"rm_hh", {{&kRm, &kHelp, &kHarm}, {"base"}}},
          {"rlhf_hh", {{&kRl}, {"sft", "rm_hh"}}},
          {"sl_cai", {{&kCai, &kSft, &kRedteam}, {"sft"}}},
          {"rl_cai_labels", {{&kCai, &kAiLabel}, {"sl_cai"}}},
          {"rm_cai", {{&kRm, &kHelp}, {"rl_cai_labels"}}},
          {"rl_cai", {{&kRl}, {"sl_cai", "rm_cai"}}},
          {"eval_base", {{&kEval}, {"base"}}},
          {"eval_sft", {{&kEval}, {"sft"}}},
          {"eval_rlhf_help", {{&kEval}, {"rlhf_help"}}},
          {"eval_rlhf_hh", {{&kEval}, {"rlhf_hh"}}},
          {"eval_sl_cai", {{&kEval}, {"sl_cai"}}},
          {"eval_rl_cai", {{&kEval}, {"rl_cai"}}},
      };
  const auto& [keys, deps] = kStages.at(stage);
  json f = {{"stage", stage}, {"settings", json::object()}, {"inputs", json::array()}};
  for (const auto* list : keys) {
    for (const std::string& k : *list) f["settings"][k] = settings.value(k, json());
  }
  for (const std::string& d : deps)
    f["inputs"].push_back(json::parse(StageFingerprint(settings, d)));
  return f.dump();
}

json RlLocalConfig(const json& s, const std::string& run, const std::string& policy,
                   const std::string& rm, const std::string& tokenizer,
                   const std::string& prompts) {
  const int64_t batch = s["rl_prompts_per_step"].get<int64_t>() * s["rl_group"].get<int64_t>();
  json config = {
      {"run_dir", run},
      {"rollout_workers", s["rollout_workers"]},
      {"learner",
       {{"policy", policy},
        {"tokenizer", tokenizer},
        {"prompts", prompts},
        {"total_steps", s["rl_steps"]},
        {"max_queue", 2 * batch},
        {"lease_seconds", 60},
        {"threads", 1},
        {"seed", s["seed"].get<uint64_t>() + 1},
        {"checkpoint_dir", run + "/checkpoints"},
        {"sampling", {{"temperature", 1.0}, {"max_new_tokens", s["max_new_tokens"]}}},
        {"ppo",
         {{"advantage", s["advantage"]},
          {"group_size", s["rl_group"]},
          {"batch_size", batch},
          {"minibatch_size", batch},
          {"epochs", 1},
          {"learning_rate", s["rl_lr"]},
          {"init_kl_coef", s["kl_coef"]},
          {"kl_target", 0},
          {"missing_eos_penalty", s["missing_eos_penalty"]},
          {"seed", s["seed"].get<uint64_t>() + 1}}}}},
      {"rollout",
       {{"model", policy},
        {"tokenizer", tokenizer},
        {"threads", 1},
        {"worker", {{"batch_prompts", batch}}}}},
      {"reward", {{"model", rm}, {"threads", 1}}},
      {"reference", {{"model", policy}, {"threads", 1}}},
  };
  return config;
}

}  // namespace rlhf::cli
