#include "common/rl/preference.h"

#include <vector>

#include "common/rl/internal/mask.h"

namespace rlhf::rl {
namespace {

void CheckPairShapes(const torch::Tensor& a, const torch::Tensor& b, const char* what) {
  TORCH_CHECK(a.sizes() == b.sizes(), what, ": shape mismatch ", a.sizes(), " vs ", b.sizes());
}

}  // namespace

torch::Tensor BradleyTerryLoss(const torch::Tensor& r_chosen, const torch::Tensor& r_rejected) {
  CheckPairShapes(r_chosen, r_rejected, "BradleyTerryLoss");
  return -torch::log_sigmoid(r_chosen - r_rejected).mean();
}

torch::Tensor BradleyTerryLoss(const torch::Tensor& r_chosen, const torch::Tensor& r_rejected,
                               const torch::Tensor& margin) {
  CheckPairShapes(r_chosen, r_rejected, "BradleyTerryLoss");
  CheckPairShapes(r_chosen, margin, "BradleyTerryLoss");
  return -torch::log_sigmoid(r_chosen - r_rejected - margin).mean();
}

torch::Tensor SoftBradleyTerryLoss(const torch::Tensor& r_a, const torch::Tensor& r_b,
                                   const torch::Tensor& p_a) {
  CheckPairShapes(r_a, r_b, "SoftBradleyTerryLoss");
  CheckPairShapes(r_a, p_a, "SoftBradleyTerryLoss");
  const torch::Tensor diff = r_a - r_b;
  return -(p_a * torch::log_sigmoid(diff) + (1 - p_a) * torch::log_sigmoid(-diff)).mean();
}

torch::Tensor KChoose2Loss(torch::TensorList rewards_ranked) {
  TORCH_CHECK(!rewards_ranked.empty(), "KChoose2Loss: no prompts");
  std::vector<torch::Tensor> per_prompt;
  per_prompt.reserve(rewards_ranked.size());
  for (const torch::Tensor& rewards : rewards_ranked) {
    TORCH_CHECK(rewards.dim() == 1 && rewards.size(0) >= 2,
                "KChoose2Loss: expected [K] rewards with K >= 2, got ", rewards.sizes());
    const int64_t k = rewards.size(0);
    // Pairs (i, j) with i < j: i is ranked above j.
    const torch::Tensor pairs = torch::triu_indices(
        k, k, /*offset=*/1, torch::dtype(torch::kLong).device(rewards.device()));
    const torch::Tensor diff =
        rewards.index_select(0, pairs[0]) - rewards.index_select(0, pairs[1]);
    per_prompt.push_back(-torch::log_sigmoid(diff).mean());  // mean = sum / C(K, 2).
  }
  return torch::stack(per_prompt).mean();
}

torch::Tensor PairwiseAccuracy(const torch::Tensor& r_chosen, const torch::Tensor& r_rejected) {
  CheckPairShapes(r_chosen, r_rejected, "PairwiseAccuracy");
  torch::NoGradGuard no_grad;
  return (r_chosen > r_rejected).to(r_chosen.scalar_type()).mean();
}

torch::Tensor OptionLogprob(const torch::Tensor& token_logprobs, const torch::Tensor& token_mask) {
  TORCH_CHECK(token_logprobs.dim() == 2, "OptionLogprob: expected [N, T], got ",
              token_logprobs.sizes());
  return (token_logprobs * internal::MaskLike(token_mask, token_logprobs, "OptionLogprob"))
      .sum(/*dim=*/1);
}

absl::Status Validate(const SoftLabelOptions& options) {
  if (options.clamp.has_value() &&
      !(0 <= options.clamp->low && options.clamp->low <= options.clamp->high &&
        options.clamp->high <= 1)) {
    return absl::InvalidArgumentError("clamp must satisfy 0 <= low <= high <= 1");
  }
  return absl::OkStatus();
}

torch::Tensor SoftPreferenceLabels(const torch::Tensor& option_logprobs,
                                   const SoftLabelOptions& options) {
  TORCH_CHECK(option_logprobs.dim() == 2 || option_logprobs.dim() == 3,
              "SoftPreferenceLabels: expected [Q, K] or [S, Q, K], got ", option_logprobs.sizes());
  torch::Tensor probs = torch::softmax(option_logprobs, /*dim=*/-1);
  if (probs.dim() == 3) probs = probs.mean(/*dim=*/0);
  if (!options.clamp.has_value()) return probs;
  TORCH_CHECK(probs.size(1) == 2, "SoftPreferenceLabels: clamp needs K == 2, got ", probs.size(1));
  const torch::Tensor p_a = probs.select(1, 0).clamp(options.clamp->low, options.clamp->high);
  return torch::stack({p_a, 1 - p_a}, /*dim=*/1);
}

}  // namespace rlhf::rl
