// Policy-gradient and value losses for RLHF: the PPO clipped surrogate (asymmetric / dual clip),
// the clipped value loss, the decoupled PPO loss for stale rollouts, and the GRPO loss.
// Pure functions on LibTorch tensors; see common/rl/stats.h for the shape, mask, dtype and error
// conventions. `loss` outputs are differentiable w.r.t. the current logprobs / values; the
// diagnostics (clipfrac, approx_kl, ...) are detached 0-dim tensors. All other inputs (old
// logprobs, advantages, returns) are treated as constants: pass them detached.
#ifndef RLHF_COMMON_RL_LOSSES_H_
#define RLHF_COMMON_RL_LOSSES_H_

#include <torch/torch.h>

#include <optional>

#include "absl/status/status.h"

namespace rlhf::rl {

// How a per-token loss l [B, T] is reduced to a scalar.
enum class LossAggregation {
  kTokenMean,         // sum(l * m) / sum(m) over the whole batch: every token weighs the same.
  kSeqMeanTokenMean,  // mean over rows of sum_t(l * m) / sum_t(m): every sequence weighs the same.
};

// Returns the aggregated 0-dim loss. REQUIRES: l and mask [B, T] of the same shape; each row has a
// real token for kSeqMeanTokenMean.
torch::Tensor AggregateLoss(const torch::Tensor& per_token, const torch::Tensor& mask,
                            LossAggregation aggregation);

struct PolicyLossOptions {
  // The ratio is clipped to [1 - clip_low, 1 + clip_high]; equal values give standard PPO,
  // clip_high > clip_low is DAPO's "clip-higher" (e.g. 0.2 / 0.28).
  double clip_low = 0.2;
  double clip_high = 0.2;
  // Dual-clip PPO (Ye et al. 2020): where A < 0 the per-token loss is capped at -c * A. REQUIRES
  // c > 1 when set; nullopt disables it.
  std::optional<double> dual_clip;
  // Reduction of the per-token loss.
  LossAggregation aggregation = LossAggregation::kTokenMean;
};
absl::Status Validate(const PolicyLossOptions& options);

struct PolicyLossResult {
  torch::Tensor loss;        // 0-dim, differentiable w.r.t. logprobs.
  torch::Tensor per_token;   // [B, T] per-token loss l_t, 0 at padding.
  torch::Tensor clipfrac;    // 0-dim: mean_m[(-A clip(rho)) > (-A rho)].
  torch::Tensor approx_kl;   // 0-dim: 0.5 mean_m[(logprobs - old_logprobs)^2].
  torch::Tensor ratio_mean;  // 0-dim: mean_m[rho].
};

// PPO clipped surrogate with rho = exp(logprobs - old_logprobs):
//   l_t = max(-A rho, -A clip(rho, 1 - clip_low, 1 + clip_high)), then min(l_t, -c A) where A < 0
//   when dual clip is on. Shapes: all [B, T]. REQUIRES: same shapes.
PolicyLossResult PpoPolicyLoss(const torch::Tensor& logprobs, const torch::Tensor& old_logprobs,
                               const torch::Tensor& advantages, const torch::Tensor& mask,
                               const PolicyLossOptions& options);

struct ValueLossOptions {
  // Clip of the value update around old_values (PPO2 value clipping); nullopt = plain MSE.
  std::optional<double> clip = 0.2;
  // Reduction of the per-token loss.
  LossAggregation aggregation = LossAggregation::kTokenMean;
};
absl::Status Validate(const ValueLossOptions& options);

struct ValueLossResult {
  torch::Tensor loss;      // 0-dim, differentiable w.r.t. values.
  torch::Tensor clipfrac;  // 0-dim: mean_m[(V_clip - R)^2 > (V - R)^2]; 0 without clipping.
};

// loss = 0.5 * agg[max((V - R)^2, (V_clip - R)^2)], V_clip = V_old + clip(V - V_old, -eps, eps);
// without clip, 0.5 * agg[(V - R)^2]. Shapes: all [B, T]. REQUIRES: same shapes.
ValueLossResult ClippedValueLoss(const torch::Tensor& values, const torch::Tensor& old_values,
                                 const torch::Tensor& returns, const torch::Tensor& mask,
                                 const ValueLossOptions& options);

struct DecoupledLossOptions {
  // The ratio to the proximal policy is clipped to [1 - clip_low, 1 + clip_high].
  double clip_low = 0.2;
  double clip_high = 0.2;
  // Behaviour weights exp(prox - behav) above the cap are zeroed (the token is dropped);
  // nullopt = no cap.
  std::optional<double> behav_weight_cap;
};
absl::Status Validate(const DecoupledLossOptions& options);

struct DecoupledLossResult {
  torch::Tensor loss;           // 0-dim, differentiable w.r.t. logprobs.
  torch::Tensor per_token;      // [B, T]: w * l_t, 0 at padding and at dropped tokens.
  torch::Tensor behav_weights;  // [B, T] detached w after capping and masking.
};

// Decoupled PPO (Hilton et al. 2022; AReaL) for rollouts from a stale behaviour policy:
// u = exp(logprobs - prox_logprobs), w = exp(prox_logprobs - behav_logprobs) (no gradient),
// w := 0 where w > cap or padded; loss = sum(w * max(-A u, -A clip(u))) / sum(m).
// Shapes: all [B, T]. REQUIRES: same shapes.
DecoupledLossResult DecoupledPpoLoss(const torch::Tensor& logprobs,
                                     const torch::Tensor& prox_logprobs,
                                     const torch::Tensor& behav_logprobs,
                                     const torch::Tensor& advantages, const torch::Tensor& mask,
                                     const DecoupledLossOptions& options);

struct GrpoLossOptions {
  // The ratio is clipped to [1 - clip_low, 1 + clip_high].
  double clip_low = 0.2;
  double clip_high = 0.2;
  // Weight of the k3 KL(policy || ref) penalty added to every token (GRPO's beta).
  double kl_coef = 0.04;
  // Reduction of the per-token loss; GRPO's original is the sequence mean of token means.
  LossAggregation aggregation = LossAggregation::kSeqMeanTokenMean;
};
absl::Status Validate(const GrpoLossOptions& options);

struct GrpoLossResult {
  torch::Tensor loss;       // 0-dim, differentiable w.r.t. logprobs (the KL term included).
  torch::Tensor per_token;  // [B, T] l_t, 0 at padding.
  torch::Tensor clipfrac;   // 0-dim, as in PolicyLossResult.
  torch::Tensor kl;         // 0-dim: mean_m[k3(logprobs, ref_logprobs)].
};

// GRPO: rho = exp(logprobs - old_logprobs), A broadcast over each sequence,
// l_t = -(min(rho A, clip(rho) A) - kl_coef * k3(logprobs, ref_logprobs)).
// Shapes: logprobs, old_logprobs, ref_logprobs, mask [B, T]; advantages [B] or [B, 1].
// REQUIRES: shapes as stated.
GrpoLossResult GrpoLoss(const torch::Tensor& logprobs, const torch::Tensor& old_logprobs,
                        const torch::Tensor& ref_logprobs, const torch::Tensor& advantages,
                        const torch::Tensor& mask, const GrpoLossOptions& options);

}  // namespace rlhf::rl

#endif  // RLHF_COMMON_RL_LOSSES_H_
