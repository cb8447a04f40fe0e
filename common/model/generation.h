// The generation engine: batched sampling with a KV cache for prompts of different lengths.
//
// Prompts are left-padded into one batch; position ids count real tokens only and pad slots are
// masked as keys, so a sequence's results do not depend on what else is in the batch (up to
// float round-off). Each sequence samples with its own RNG stream (seeded per sequence), so its
// tokens do not depend on its batch-mates either. Stops per sequence on EOS or max tokens.
//
// Returned log-probs are those of the sampled tokens under log_softmax(logits / temperature)
// (temperature 0 = greedy uses temperature 1), the convention the reference service and the PPO
// learner use to recompute them. top-k / top-p restrict which tokens can be drawn; they do not
// renormalise the returned log-probs.
//
// Thread-safe: Generate() keeps all per-call state on its stack; the weights are const.
#ifndef RLHF_COMMON_MODEL_GENERATION_H_
#define RLHF_COMMON_MODEL_GENERATION_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/model/llama.h"

namespace rlhf::model {

struct SamplingOptions {
  /// Softmax temperature; 0 selects greedy decoding.
  double temperature = 1.0;
  /// Keep only the k most likely tokens (0 = off).
  int64_t top_k = 0;
  /// Keep the smallest set of tokens whose probability reaches top_p (1 = off).
  double top_p = 1.0;
  /// Tokens to generate per sequence at most.
  int64_t max_new_tokens = 64;
  /// Stop a sequence when it samples the model's EOS id (the EOS token is kept in the output).
  bool stop_at_eos = true;
  /// Base seed; sequence i of a call uses seed + i unless per-sequence seeds are given.
  uint64_t seed = 0;
};

// Returns InvalidArgument naming the bad field.
absl::Status Validate(const SamplingOptions& options);

// Checks prompts for Generate(): not empty, ids inside the vocabulary, prompt + max_new_tokens
// within max_seq_len. Returns InvalidArgument naming the prompt.
absl::Status CheckPrompts(const std::vector<std::vector<int64_t>>& prompts,
                          const LlamaConfig& config, const SamplingOptions& options);

enum class FinishReason { kEos, kLength };
std::string FinishReasonName(FinishReason reason);

struct GenerationResult {
  std::vector<int64_t> tokens;    // generated tokens only (not the prompt)
  std::vector<float> logprobs;    // one per generated token
  FinishReason finish_reason = FinishReason::kLength;
};

class GenerationEngine {
 public:
  // Snapshots `model`'s weights into an inference layout (fused q/k/v and gate/up matrices).
  // Later changes to `model` are not seen: build a new engine to swap weights.
  // REQUIRES: model has an LM head.
  static absl::StatusOr<std::unique_ptr<GenerationEngine>> Create(const Llama& model);

  ~GenerationEngine();
  GenerationEngine(const GenerationEngine&) = delete;
  GenerationEngine& operator=(const GenerationEngine&) = delete;

  // Generates a continuation of every prompt (token ids, BOS included if wanted). `seeds`, when
  // not empty, gives one seed per prompt. Errors: InvalidArgument for empty prompts, ids out of
  // range, bad options, or prompt + max_new_tokens beyond the model's max_seq_len.
  absl::StatusOr<std::vector<GenerationResult>> Generate(
      const std::vector<std::vector<int64_t>>& prompts, const SamplingOptions& options,
      absl::Span<const uint64_t> seeds = {}) const;

  const LlamaConfig& config() const;

 private:
  struct Weights;
  explicit GenerationEngine(std::unique_ptr<Weights> weights);
  std::unique_ptr<Weights> w_;
};

}  // namespace rlhf::model

#endif  // RLHF_COMMON_MODEL_GENERATION_H_
