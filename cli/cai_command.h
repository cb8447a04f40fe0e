// `rlhf cai-revise` and `rlhf cai-label`: the Constitutional AI data jobs, as clients of the
// services (generation through a rollout service's Generate, scoring through a reference
// service's LogProbs, which can serve any checkpoint: the feedback model). The prompts are
// common/cai's, the soft-label math common/rl's.
//
//  cai-revise: red-team prompts -> a response -> N rounds of critique and revision, each under a
//    principle drawn from the constitution -> JSONL {prompt, response (the final revision),
//    initial_response, steps: [{principle, critique, revision}]}, which `rlhf sft` reads, mixed
//    with helpful demonstrations when --helpful is given.
//  cai-label: prompts -> two sampled responses (or given {prompt, a, b} pairs) -> per pair, K
//    feedback principles -> the multiple-choice prompt scored on " (A)" / " (B)" -> the soft label
//    p_a (softmax, averaged over the principles; with --cot a rationale is generated first and the
//    label clamped to [0.4, 0.6]) -> JSONL {prompt, a, b, p_a, ...}, which `rlhf train-rm` reads.
#ifndef RLHF_CLI_CAI_COMMAND_H_
#define RLHF_CLI_CAI_COMMAND_H_

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace rlhf::cli {

struct CaiGenerationArgs {
  std::string rollout;  // host:port of a rollout service
  int64_t max_new_tokens = 64;
  double temperature = 0.7;
  uint64_t seed = 1;
  int64_t batch = 16;  // prompts per Generate / LogProbs call
};

struct CaiReviseArgs {
  std::string prompts;       // JSONL {"prompt": ...}
  std::string constitution;  // JSON list of {name, critique_request, revision_request}
  std::string few_shot;      // JSON list of example strings (optional)
  int64_t rounds = 1;
  std::string helpful;  // JSONL {"prompt", "response"} demonstrations to mix in (optional)
  double helpful_fraction = 0.5;
  std::string out;
  CaiGenerationArgs gen;
};

struct CaiLabelArgs {
  std::string prompts;     // JSONL {"prompt"} (two responses sampled) or {"prompt", "a", "b"}
  std::string principles;  // JSON list of {name, question}
  std::string few_shot;    // JSON list of example strings (optional)
  std::string cot;         // chain-of-thought examples (RLMadisonPrecogFewShotPrompts.json)
  int64_t ensemble = 1;    // principles per pair
  bool both_orders = false;  // also ask with the responses swapped (averages out position bias)
  double clamp_low = -1, clamp_high = -1;  // default: [0, 1], or [0.4, 0.6] with --cot
  std::string reference;  // host:port of the reference service serving the feedback model
  std::string tokenizer;  // the feedback model's tokenizer
  std::string out;
  CaiGenerationArgs gen;
};

CLI::App* AddCaiReviseCommand(CLI::App& app, CaiReviseArgs& args);
CLI::App* AddCaiLabelCommand(CLI::App& app, CaiLabelArgs& args);
absl::Status RunCaiRevise(const CaiReviseArgs& args);
absl::Status RunCaiLabel(const CaiLabelArgs& args);

}  // namespace rlhf::cli

#endif  // RLHF_CLI_CAI_COMMAND_H_
