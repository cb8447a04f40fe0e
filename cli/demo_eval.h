// `rlhf demo`'s evaluation of one stage, as a client of the services: the stage's policy samples
// the world's held-out prompts through a rollout service's Generate, the gold raters
// (common/world/gold.h) judge every sample, a reward service scores them under the stage's reward
// model and a reference service gives the KL to the stage's reference.
#ifndef RLHF_CLI_DEMO_EVAL_H_
#define RLHF_CLI_DEMO_EVAL_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tokenizer/tokenizer.h"
#include "common/world/gold.h"
#include "common/world/world.h"

namespace rlhf::cli {

struct StageEvalOptions {
  std::string rollout;    // host:port serving the stage's policy
  std::string reward;     // host:port of the stage's reward model; "" = no RM score
  std::string reference;  // host:port of the stage's reference; "" = no KL
  const tokenizer::Tokenizer* tokenizer = nullptr;
  int samples = 4;  // per held-out prompt
  double temperature = 1.0;
  int max_new_tokens = 32;
  uint64_t seed = 123;
  int batch = 64;  // sequences per RPC
};

struct StageEval {
  std::map<std::string, world::MeanSe> gold;  // GoldMetrics
  std::optional<world::MeanSe> rm_score;      // mean over samples, SE over prompts
  std::optional<double> kl;  // mean over samples of sum_t (log pi - log pi_ref) at temperature 1
  double mean_tokens = 0;
  // A few samples per prompt kind: {"kind", "prompt", "response"}.
  std::vector<std::map<std::string, std::string>> examples;
};

absl::StatusOr<StageEval> EvaluateStage(const world::World& world, const StageEvalOptions& options);

}  // namespace rlhf::cli

#endif  // RLHF_CLI_DEMO_EVAL_H_
