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
#include "cli/job_args.h"

namespace rlhf::cli {

struct SftArgs {
  std::string data;
  int64_t bucket_batches = 8;
  double eval_fraction = 0.05;
  int64_t eval_every = 50;
  TrainArgs job;  // tokenizer, model, out, optimisation, checkpoints, bad data
};

CLI::App* AddSftCommand(CLI::App& app, SftArgs& args);
absl::Status RunSft(const SftArgs& args);

}  // namespace rlhf::cli

#endif  // RLHF_CLI_SFT_COMMAND_H_
