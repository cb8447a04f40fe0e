// `rlhf eval`, two modes, each printing a table and a JSON report:
//  - a reward model (--rm, --data): its pairwise accuracy on a preference file, next to the
//    baselines it must beat (random 0.5, and the better of "longer response wins" / "shorter
//    response wins"). Scores come from reward::ModelScorer, the code the reward service runs, so
//    they equal the service's.
//  - a policy (--policy, --prompts): samples a response per prompt, and reports the mean reward
//    model score (--rm), the mean KL to a reference model (--reference: the sum over response
//    tokens of log pi(t) - log ref(t), both at the sampling temperature), response length and
//    EOS rate, and the first --samples prompt/response pairs.
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
  std::string policy;     // policy mode: HF directory or .bin
  std::string prompts;    // policy mode: {"prompt": ...} JSONL
  std::string reference;  // policy mode: reference model for the KL (optional)
  int64_t samples = 3;    // policy mode: samples shown
  int64_t max_new_tokens = 64;
  double temperature = 1.0;
  uint64_t seed = 1;
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
