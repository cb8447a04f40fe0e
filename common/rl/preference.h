// Reward-model training losses on pairwise / ranked preferences (Bradley-Terry and its soft and
// K-wise forms), and constitutional-AI style soft preference labels from a feedback model's
// option log-probs. Pure functions on LibTorch tensors (see common/rl/stats.h for conventions);
// losses are 0-dim tensors differentiable w.r.t. the reward tensors.
#ifndef RLHF_COMMON_RL_PREFERENCE_H_
#define RLHF_COMMON_RL_PREFERENCE_H_

#include <torch/torch.h>

#include <optional>

#include "absl/status/status.h"
#include "common/rl/stats.h"

namespace rlhf::rl {

// Bradley-Terry loss mean[-log sigmoid(r_chosen - r_rejected)].
// Shapes: r_chosen, r_rejected [N]. REQUIRES: same shapes.
torch::Tensor BradleyTerryLoss(const torch::Tensor& r_chosen, const torch::Tensor& r_rejected);

// Bradley-Terry with a required margin (Llama 2): mean[-log sigmoid(r_chosen - r_rejected -
// margin)]. Shapes: all [N]. REQUIRES: same shapes.
torch::Tensor BradleyTerryLoss(const torch::Tensor& r_chosen, const torch::Tensor& r_rejected,
                               const torch::Tensor& margin);

// Bradley-Terry with soft labels p_a = P(a preferred over b) in [0, 1]:
// mean[-(p_a log sigmoid(r_a - r_b) + (1 - p_a) log sigmoid(r_b - r_a))].
// Shapes: all [N]. REQUIRES: same shapes.
torch::Tensor SoftBradleyTerryLoss(const torch::Tensor& r_a, const torch::Tensor& r_b,
                                   const torch::Tensor& p_a);

// K-wise ranking loss (InstructGPT): for each prompt, -1/C(K,2) sum_{i<j} log sigmoid(r_i - r_j)
// with rewards ranked best first; the mean over prompts. Prompts may have different K.
// Shapes: rewards_ranked[p] is [K_p]. REQUIRES: at least one prompt; every K_p >= 2.
torch::Tensor KChoose2Loss(torch::TensorList rewards_ranked);

// Returns mean[r_chosen > r_rejected] as a 0-dim tensor of r_chosen's dtype (ties count as wrong).
// REQUIRES: same shapes.
torch::Tensor PairwiseAccuracy(const torch::Tensor& r_chosen, const torch::Tensor& r_rejected);

// Log-probability of each option text under the feedback model: sum_t token_logprobs * mask.
// Shapes: token_logprobs, token_mask [N, T] -> [N]. REQUIRES: same shapes, 2-D.
torch::Tensor OptionLogprob(const torch::Tensor& token_logprobs, const torch::Tensor& token_mask);

struct SoftLabelOptions {
  // With two options, p_A is clamped to [low, high] and p_B := 1 - p_A (limits over-confident
  // labels, e.g. [0.4, 0.6]); nullopt = the plain softmax.
  std::optional<ClipRange> clamp;
};
absl::Status Validate(const SoftLabelOptions& options);

// Soft preference labels: softmax over the options of each question. Shapes: option_logprobs
// [Q, K] -> [Q, K]; or [S, Q, K] for S sampled prompts/orderings, whose softmaxes are averaged
// BEFORE the clamp -> [Q, K]. REQUIRES: 2-D or 3-D; K == 2 when options.clamp is set.
torch::Tensor SoftPreferenceLabels(const torch::Tensor& option_logprobs,
                                   const SoftLabelOptions& options = {});

}  // namespace rlhf::rl

#endif  // RLHF_COMMON_RL_PREFERENCE_H_
