// Token sampling for a batch of logit rows: greedy, temperature, top-k, top-p. Each row has its
// own RNG stream, so a row's draws do not depend on the other rows. Not thread-safe (the RNG
// streams advance on every call).
#ifndef RLHF_COMMON_MODEL_SAMPLING_H_
#define RLHF_COMMON_MODEL_SAMPLING_H_

#include <random>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "absl/types/span.h"
#include "common/model/generation.h"

namespace rlhf::model {

class TokenSampler {
 public:
  // Row i uses seeds[i] when seeds is not empty, else options.seed + i.
  TokenSampler(const SamplingOptions& options, int64_t rows, absl::Span<const uint64_t> seeds);

  // logits: [rows, vocab]. Returns (tokens int64 [rows], log-probs float32 [rows]) where the
  // log-prob is log_softmax(logits / temperature) at the token (temperature 1 when greedy).
  std::pair<torch::Tensor, torch::Tensor> Sample(const torch::Tensor& logits);

 private:
  torch::Tensor Draw(const torch::Tensor& probs);  // one index per row, by inverse CDF

  SamplingOptions options_;
  std::vector<std::mt19937_64> rngs_;
};

}  // namespace rlhf::model

#endif  // RLHF_COMMON_MODEL_SAMPLING_H_
