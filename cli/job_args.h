// The flags the training jobs (`rlhf sft`, `rlhf train-rm`) share: the model to start from
// (--init, or the dims of a fresh one), the optimisation recipe, checkpoints and the bad-data
// policy. Free of LibTorch, so that the commands' headers (and cli/main.cc) stay light;
// cli/job_util.h builds the model.
#ifndef RLHF_CLI_JOB_ARGS_H_
#define RLHF_CLI_JOB_ARGS_H_

#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>

namespace rlhf::cli {

struct ModelArgs {
  std::string init;  // HF dir or .bin; empty = a fresh model of the dims below
  // A JSON file of fresh-model dims, any of {"dim", "layers", "heads", "kv_heads",
  // "hidden_dim", "max_seq_len"}; they override the flags. Unknown keys are errors.
  std::string config;
  int64_t kv_heads = 0;  // 0 = heads
  int64_t dim = 64;
  int64_t layers = 2;
  int64_t heads = 4;
  int64_t hidden_dim = 0;  // 0 = about 8/3 dim, a multiple of 16
  int64_t max_seq_len = 512;
};
void AddModelOptions(CLI::App* cmd, ModelArgs& args);

struct TrainArgs {
  std::string tokenizer;  // SentencePiece .model or llama2.c tokenizer.bin
  ModelArgs model;
  std::string out;        // output directory (HF format); checkpoints in <out>/checkpoint
  double epochs = 1;
  int64_t batch = 16;       // examples (sequences or pairs) per optimizer step
  int64_t micro_batch = 8;  // per forward pass (gradient accumulation)
  double lr = 1e-3;
  double min_lr_ratio = 0.1;
  int64_t warmup = 10;
  double weight_decay = 0.01;
  double max_grad_norm = 1.0;
  uint64_t seed = 1;
  int64_t checkpoint_every = 100;
  bool resume = false;
  bool strict = false;
  int64_t max_bad = 10;
  int64_t stop_after = 0;  // stop (with a checkpoint) after this many steps: tests of --resume
  // Data-parallel ranks (torchrun variables): how long to wait for the others, at the start and
  // in each collective, before failing.
  double dist_timeout_seconds = 120;
};
// Adds --tokenizer, the model options, --out and the rest of TrainArgs; `unit` names what a
// batch counts ("sequences", "pairs").
void AddTrainOptions(CLI::App* cmd, TrainArgs& args, const std::string& unit);

}  // namespace rlhf::cli

#endif  // RLHF_CLI_JOB_ARGS_H_
