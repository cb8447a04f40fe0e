// `rlhf generate`: sample continuations of text prompts from a checkpoint with the KV-cache
// generation engine, printing text or JSONL (tokens, log-probs, finish reason).
#ifndef RLHF_CLI_GENERATE_COMMAND_H_
#define RLHF_CLI_GENERATE_COMMAND_H_

#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>

#include "absl/status/status.h"

namespace rlhf::cli {

struct GenerateArgs {
  std::string model;      // HF directory or llama2.c .bin
  std::string tokenizer;  // .model or tokenizer.bin; defaults to <model dir>/tokenizer.model
  std::string prompt;     // one prompt, or
  std::string prompts;    // a JSONL file of {"prompt": "..."}
  int64_t max_new_tokens = 64;
  double temperature = 0.8;
  int64_t top_k = 0;
  double top_p = 1.0;
  uint64_t seed = 0;
  int64_t batch_size = 16;
  bool jsonl = false;
  bool no_bos = false;
  bool ignore_eos = false;
};

// Adds the subcommand to `app`; parsed values land in `args`.
CLI::App* AddGenerateCommand(CLI::App& app, GenerateArgs& args);

// Runs it, writing results to stdout and progress to stderr.
absl::Status RunGenerate(const GenerateArgs& args);

}  // namespace rlhf::cli

#endif  // RLHF_CLI_GENERATE_COMMAND_H_
