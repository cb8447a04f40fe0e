// `rlhf eval`: how good is a reward model? Its pairwise accuracy on a preference file, next to
// the baselines it must beat (random 0.5, and the better of "longer response wins" / "shorter
// response wins"), printed as a table and written as a JSON report. Scores come from
// reward::ModelScorer, the code the reward service runs, so they equal the service's.
#ifndef RLHF_CLI_EVAL_COMMAND_H_
#define RLHF_CLI_EVAL_COMMAND_H_

#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "common/data/preference_data.h"

namespace rlhf::cli {

struct EvalArgs {
  std::string rm;         // reward model: HF directory written by `rlhf train-rm`
  std::string data;       // preference JSONL (.gz allowed)
  std::string tokenizer;  // default: <rm>/tokenizer.model
  std::string report;     // JSON report path (optional)
  std::string scores;     // per-pair scores as JSONL (optional)
  bool strict = false;
  int64_t max_bad = 10;
  int64_t batch = 16;
};

CLI::App* AddEvalCommand(CLI::App& app, EvalArgs& args);
absl::Status RunEval(const EvalArgs& args);

// Scores every pair of `data_path` with the reward model in `rm_dir` and returns the report:
// {"data", "pairs", "skipped", "accuracy", "baselines": {"random", "longer_wins", "shorter_wins",
// "best_length"}, "beats_baselines", "mean_margin"}. Also prints the table to stderr, and when
// `scores_path` is not empty writes {"line", "chosen", "rejected"} scores there, one per pair.
absl::StatusOr<nlohmann::json> EvaluateRewardModel(const std::string& rm_dir,
                                                   const std::string& tokenizer_path,
                                                   const std::string& data_path,
                                                   const data::ReadOptions& options,
                                                   int64_t batch,
                                                   const std::string& scores_path = "");

}  // namespace rlhf::cli

#endif  // RLHF_CLI_EVAL_COMMAND_H_
