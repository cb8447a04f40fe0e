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
#include "cli/model_args.h"

namespace rlhf::cli {

struct TrainRmArgs {
  std::string train;      // preference JSONL (.gz allowed)
  std::string test;       // evaluated at the end (optional)
  std::string exclude;    // pairs also in this file are dropped from `train`
  std::string tokenizer;  // SentencePiece .model or tokenizer.bin
  ModelArgs model;        // --init or fresh dims
  std::string out;
  double epochs = 1;
  int64_t batch = 16;
  int64_t micro_batch = 8;
  double lr = 1e-3;
  double min_lr_ratio = 0.1;
  int64_t warmup = 10;
  double weight_decay = 0.01;
  double max_grad_norm = 1.0;
  uint64_t seed = 1;
  int64_t checkpoint_every = 100;
  bool resume = false;
  bool normalize = false;
  bool strict = false;
  int64_t max_bad = 10;
  int64_t stop_after = 0;  // stop (with a checkpoint) after this many steps: tests of --resume
};

CLI::App* AddTrainRmCommand(CLI::App& app, TrainRmArgs& args);
absl::Status RunTrainRm(const TrainRmArgs& args);

}  // namespace rlhf::cli

#endif  // RLHF_CLI_TRAIN_RM_COMMAND_H_
