// The model a training job starts from: --init, or the dims of a fresh one. Free of LibTorch, so
// that the commands' headers (and cli/main.cc) stay light; cli/job_util.h builds the model.
#ifndef RLHF_CLI_MODEL_ARGS_H_
#define RLHF_CLI_MODEL_ARGS_H_

#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>

namespace rlhf::cli {

struct ModelArgs {
  std::string init;  // HF dir or .bin; empty = a fresh model of the dims below
  int64_t dim = 64;
  int64_t layers = 2;
  int64_t heads = 4;
  int64_t hidden_dim = 0;  // 0 = about 8/3 dim, a multiple of 16
  int64_t max_seq_len = 512;
};
void AddModelOptions(CLI::App* cmd, ModelArgs& args);

}  // namespace rlhf::cli

#endif  // RLHF_CLI_MODEL_ARGS_H_
