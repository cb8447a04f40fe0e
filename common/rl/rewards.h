// Rewards and advantages for RLHF: KL estimators, the missing-EOS score penalty, per-token
// KL-shaped rewards, GAE, V-trace, truncated importance weights and group baselines (GRPO/RLOO).
// Pure functions on LibTorch tensors; see common/rl/stats.h for the shape, mask, dtype and error
// conventions. Results stay on the autograd graph; callers that compute rollout-time targets
// should run these under torch::NoGradGuard (or pass detached tensors).
#ifndef RLHF_COMMON_RL_REWARDS_H_
#define RLHF_COMMON_RL_REWARDS_H_

#include <torch/torch.h>

#include <optional>

#include "absl/status/status.h"
#include "common/rl/stats.h"

namespace rlhf::rl {

// Estimators of KL(policy || ref) per sampled token, with L = logprob - ref_logprob (Schulman,
// "Approximating KL Divergence").
enum class KlEstimator {
  kK1,  // L: unbiased, high variance, can be negative.
  kK2,  // L^2 / 2: biased, low variance.
  kK3,  // exp(-L) - 1 + L: unbiased, >= 0.
};

// Returns the elementwise (unmasked) estimate, shape of `logprobs`.
// REQUIRES: ref_logprobs.sizes() == logprobs.sizes().
torch::Tensor KlEstimate(const torch::Tensor& logprobs, const torch::Tensor& ref_logprobs,
                         KlEstimator estimator);

// Returns mean over rows of sum_t kl * mask, a 0-dim tensor: the per-sequence KL that the adaptive
// KL controller observes. REQUIRES: kl and mask are [B, T] of the same shape.
torch::Tensor MeanSequenceKl(const torch::Tensor& kl, const torch::Tensor& mask);

enum class MissingEosMode {
  kSubtract,  // score - penalty.
  kReplace,   // score := penalty.
};

struct MissingEosPenaltyOptions {
  // What happens to the score of a response that was cut off before EOS.
  MissingEosMode mode = MissingEosMode::kSubtract;
  // kSubtract: the amount subtracted (e.g. 1.0). kReplace: the score given instead (e.g. -1.0).
  double penalty = 1.0;
};

// Returns the scores [B] with the penalty applied where contains_eos [B] (bool or 0/1) is false.
// REQUIRES: scores and contains_eos are 1-D of the same length.
torch::Tensor ApplyMissingEosPenalty(const torch::Tensor& scores, const torch::Tensor& contains_eos,
                                     const MissingEosPenaltyOptions& options);

struct TokenRewardOptions {
  // KL estimator used as the per-token penalty.
  KlEstimator estimator = KlEstimator::kK1;
  // Clamp applied to the sequence score before it is added; nullopt = no clamp.
  std::optional<ClipRange> score_clip;
};

struct TokenRewards {
  torch::Tensor rewards;  // [B, T]: -kl_coef * kl, plus the (clipped) score at the last real token.
  torch::Tensor kl;       // [B, T]: KlEstimate(...) * mask.
};

// Per-token rewards r_t = -kl_coef * k(t) * m_t, with clip(score) added at the LAST REAL token of
// each row (not one past it). `kl_coef` is the current KL coefficient (see KlController).
// Shapes: scores [B]; logprobs, ref_logprobs, mask [B, T]. REQUIRES: shapes as stated.
TokenRewards ComputeTokenRewards(const torch::Tensor& scores, const torch::Tensor& logprobs,
                                 const torch::Tensor& ref_logprobs, const torch::Tensor& mask,
                                 double kl_coef, const TokenRewardOptions& options);
absl::Status Validate(const TokenRewardOptions& options);

struct GaeOptions {
  // Discount factor, in [0, 1].
  double gamma = 1.0;
  // GAE lambda, in [0, 1]: 0 = one-step TD, 1 = Monte-Carlo returns.
  double lambda = 0.95;
};

struct GaeResult {
  torch::Tensor advantages;  // [B, T], 0 at padding. Not whitened (see Whiten).
  torch::Tensor returns;     // [B, T]: advantages + values * mask, 0 at padding.
};

// Generalized advantage estimation. Padded rewards and values are zeroed BEFORE the recursion, so
// the bootstrap value after the last real token is 0:
//   delta_t = r_t + gamma V_{t+1} - V_t,  A_t = delta_t + gamma lambda A_{t+1},  A_T = V_T = 0.
// REQUIRES: rewards, values and mask are [B, T] of the same shape.
GaeResult ComputeGae(const torch::Tensor& rewards, const torch::Tensor& values,
                     const torch::Tensor& mask, const GaeOptions& options);
absl::Status Validate(const GaeOptions& options);

struct VtraceOptions {
  // Discount factor, in [0, 1].
  double gamma = 1.0;
  // Truncation of the importance ratio in the TD errors (rho-bar), > 0.
  double rho_bar = 1.0;
  // Truncation of the importance ratio in the trace (c-bar), > 0.
  double c_bar = 1.0;
};

struct VtraceResult {
  torch::Tensor vs;             // [B, T] V-trace value targets, 0 at padding.
  torch::Tensor pg_advantages;  // [B, T] rho_t (r_t + gamma vs_{t+1} - V_t), 0 at padding.
};

// V-trace (Espeholt et al. 2018) off-policy corrected targets, with ratio = exp(target -
// behaviour) * mask, rho = min(rho_bar, ratio), c = min(c_bar, ratio), masked rewards/values and
// V, vs after the last position = 0. REQUIRES: all inputs [B, T] of the same shape.
VtraceResult ComputeVtrace(const torch::Tensor& behaviour_logprobs,
                           const torch::Tensor& target_logprobs, const torch::Tensor& rewards,
                           const torch::Tensor& values, const torch::Tensor& mask,
                           const VtraceOptions& options);
absl::Status Validate(const VtraceOptions& options);

// Truncated importance weight correcting for a sampler that differs from the trainer (e.g. an
// inference engine): clamp(exp(trainer_logprobs - sampler_logprobs), range.low, range.high),
// elementwise and unmasked. REQUIRES: same shapes.
torch::Tensor TruncatedIsWeight(const torch::Tensor& trainer_logprobs,
                                const torch::Tensor& sampler_logprobs, const ClipRange& range);

enum class GroupBaseline {
  kMeanStd,      // GRPO: (r - mean) / (std + eps), std unbiased.
  kMean,         // Unscaled GRPO: r - mean.
  kLeaveOneOut,  // RLOO: r_i - mean of the other G - 1 rewards.
};

struct GroupAdvantageOptions {
  // Which baseline is subtracted (and whether the result is scaled).
  GroupBaseline baseline = GroupBaseline::kMeanStd;
  // Added to the group std (kMeanStd only); keeps all-equal groups at advantage 0.
  double eps = 1e-4;
};

// Returns per-sample advantages [N, G] from scalar rewards [N groups, G samples per prompt].
// REQUIRES: rewards.dim() == 2 and G >= 2.
torch::Tensor GroupAdvantages(const torch::Tensor& rewards, const GroupAdvantageOptions& options);
absl::Status Validate(const GroupAdvantageOptions& options);

}  // namespace rlhf::rl

#endif  // RLHF_COMMON_RL_REWARDS_H_
