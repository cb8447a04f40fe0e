// What the training jobs (`rlhf sft`, `rlhf train-rm`) share: the model to start from (--init
// or fresh dims, cli/job_args.h), the atomic checkpoint directory, and the output
// directory's extra files. Includes LibTorch: for the commands' .cc files only.
#ifndef RLHF_CLI_JOB_UTIL_H_
#define RLHF_CLI_JOB_UTIL_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cli/job_args.h"
#include "common/dist/process_group.h"
#include "common/data/preference_data.h"
#include "common/model/llama.h"
#include "common/train/optim.h"

namespace rlhf::cli {



// The optimiser settings of the flags (total_steps is left to the job).
train::OptimOptions OptimOptionsFrom(const TrainArgs& args);

// --init's model, or a fresh one (`seed`) with `vocab_size`. With `scalar_head` the result has
// a scalar head and no LM head (--init's trunk is kept; a missing head starts random); without,
// an LM head (required of --init).
absl::StatusOr<model::Llama> InitialModel(const ModelArgs& args, int64_t vocab_size,
                                          bool scalar_head, uint64_t seed);

// Runs `save(<out>/checkpoint.tmp)` and renames the result to <out>/checkpoint. An empty `save`
// (a data-parallel rank other than 0, which writes nothing) does nothing.
absl::Status SaveCheckpointAtomically(const std::string& out,
                                      const std::function<absl::Status(const std::string&)>& save);

// Called after optimizer step `step`: saves a checkpoint (atomically, through `save`) every
// --checkpoint-every steps and at --stop-after, where it returns true: the job stops there and
// --resume continues it.
absl::StatusOr<bool> CheckpointAfterStep(
    const TrainArgs& args, int64_t step,
    const std::function<absl::Status(const std::string&)>& save);

// A data-parallel job's ranks, launched torchrun-style: every rank runs the same command with
// RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT set (common/dist/dist_options.h). Joins the
// group (waiting up to `timeout` for the others) and returns it, or nullptr without those
// variables (one process). Rank 0 writes the job's files; the others only train.
absl::StatusOr<std::unique_ptr<dist::ProcessGroup>> JoinJobRanks(const std::string& job,
                                                                 absl::Duration timeout);

// tokenizer.model or tokenizer.bin in `model`'s directory (or beside a .bin file); "" if none.
std::string TokenizerBeside(const std::string& model);

// The jobs' --strict / --max-bad policy as data::ReadOptions.
data::ReadOptions ReadOptionsFrom(bool strict, int64_t max_bad);

// Prints each skipped record ("skipped file:line: reason") to stderr.
void PrintSkipped(const data::ReadReport& report);

absl::Status WriteJsonFile(const std::string& path, const nlohmann::json& j);

// Copies the tokenizer into `out` as tokenizer.model (SentencePiece) or tokenizer.bin.
absl::Status CopyTokenizer(const std::string& tokenizer, const std::string& out);

}  // namespace rlhf::cli

#endif  // RLHF_CLI_JOB_UTIL_H_
