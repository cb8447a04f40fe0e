// `rlhf sft`: supervised fine-tuning of a causal LM on demonstrations ({"prompt", "response"}
// or HH transcripts, trained on the Assistant turns only), with a held-out split whose loss is
// reported every --eval-every steps and at the end. The output is an HF directory the learner,
// rollout and reference services load (config.json + model.safetensors, the tokenizer,
// training.json).
#ifndef RLHF_CLI_SFT_COMMAND_H_
#define RLHF_CLI_SFT_COMMAND_H_

#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>

#include "absl/status/status.h"
#include "cli/model_args.h"

namespace rlhf::cli {

struct SftArgs {
  std::string data;
  std::string tokenizer;
  ModelArgs model;  // --init or fresh dims
  std::string out;
  double epochs = 1;
  int64_t batch = 16;
  int64_t micro_batch = 8;
  int64_t bucket_batches = 8;
  double lr = 1e-3;
  double min_lr_ratio = 0.1;
  int64_t warmup = 10;
  double weight_decay = 0.01;
  double max_grad_norm = 1.0;
  double eval_fraction = 0.05;
  int64_t eval_every = 50;
  uint64_t seed = 1;
  int64_t checkpoint_every = 100;
  bool resume = false;
  bool strict = false;
  int64_t max_bad = 10;
  int64_t stop_after = 0;
};

CLI::App* AddSftCommand(CLI::App& app, SftArgs& args);
absl::Status RunSft(const SftArgs& args);

}  // namespace rlhf::cli

#endif  // RLHF_CLI_SFT_COMMAND_H_
