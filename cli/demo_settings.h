// `rlhf demo`'s settings: every knob of a run (recorded in the report), what each stage depends
// on (the fingerprint that decides whether a rerun reuses it), and the `rlhf local` config of an
// RL stage.
#ifndef RLHF_CLI_DEMO_SETTINGS_H_
#define RLHF_CLI_DEMO_SETTINGS_H_

#include <nlohmann/json.hpp>
#include <string>

#include "cli/demo_command.h"
#include "common/world/world.h"

namespace rlhf::cli {

// The preset (default or --quick) with the command line's overrides.
nlohmann::json DemoSettings(const DemoArgs& args);
world::WorldOptions WorldOptionsFrom(const nlohmann::json& settings);
// The stage's settings and, recursively, its inputs' (stages: world, base, sft, rm_help,
// rlhf_help, rm_hh, rlhf_hh, sl_cai, rl_cai_labels, rm_cai, rl_cai, eval_<stage>).
std::string StageFingerprint(const nlohmann::json& settings, const std::string& stage);
// A LocalConfig (JSON) for RL from `policy` (also the frozen reference) against the reward
// model `rm`, in `run`.
nlohmann::json RlLocalConfig(const nlohmann::json& settings, const std::string& run,
                             const std::string& policy, const std::string& rm,
                             const std::string& tokenizer, const std::string& prompts);

}  // namespace rlhf::cli

#endif  // RLHF_CLI_DEMO_SETTINGS_H_
