// `rlhf train-rm`: train a scalar-head reward model on preference pairs (HH transcripts,
// explicit {prompt, chosen, rejected}, or soft AI-feedback labels {prompt, a, b, p_a}) with the
// Bradley-Terry loss, then evaluate it next to the length baselines (`rlhf eval`). The output
// is an HF directory the reward service loads: config.json + model.safetensors, the tokenizer,
// training.json (the facts of the run) and, with --normalize, reward_normalization.json.
#ifndef RLHF_CLI_TRAIN_RM_COMMAND_H_
#define RLHF_CLI_TRAIN_RM_COMMAND_H_

#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>

#include "absl/status/status.h"
#include "cli/job_args.h"

namespace rlhf::cli {

struct TrainRmArgs {
  std::string train;      // preference JSONL (.gz allowed)
  std::string test;       // evaluated at the end (optional)
  std::string exclude;    // pairs also in this file are dropped from `train`
  bool normalize = false;
  TrainArgs job;  // tokenizer, model, out, optimisation, checkpoints, bad data
};

CLI::App* AddTrainRmCommand(CLI::App& app, TrainRmArgs& args);
absl::Status RunTrainRm(const TrainRmArgs& args);

}  // namespace rlhf::cli

#endif  // RLHF_CLI_TRAIN_RM_COMMAND_H_
