#include "common/rl/losses.h"

#include "common/rl/internal/mask.h"
#include "common/rl/rewards.h"
#include "common/rl/stats.h"

namespace rlhf::rl {
namespace {

void CheckSameShapes(const torch::Tensor& reference, std::initializer_list<torch::Tensor> others,
                     const char* what) {
  TORCH_CHECK(reference.dim() == 2, what, ": expected [B, T] tensors, got ", reference.sizes());
  for (const torch::Tensor& other : others) {
    TORCH_CHECK(other.sizes() == reference.sizes(), what, ": shape mismatch ", other.sizes(),
                " vs ", reference.sizes());
  }
}

struct Surrogate {
  torch::Tensor loss;     // max(-A rho, -A clip(rho)), unmasked.
  torch::Tensor clipped;  // bool: the clipped branch is the larger one.
};

Surrogate ClippedSurrogate(const torch::Tensor& ratio, const torch::Tensor& advantages,
                           double clip_low, double clip_high) {
  const torch::Tensor unclipped = -advantages * ratio;
  const torch::Tensor clipped = -advantages * ratio.clamp(1.0 - clip_low, 1.0 + clip_high);
  return {torch::max(unclipped, clipped), (clipped > unclipped).detach()};
}

absl::Status ValidateClip(double clip_low, double clip_high) {
  if (!(clip_low >= 0 && clip_low < 1)) {
    return absl::InvalidArgumentError("clip_low must be in [0, 1)");
  }
  if (!(clip_high >= 0)) return absl::InvalidArgumentError("clip_high must be >= 0");
  return absl::OkStatus();
}

}  // namespace

torch::Tensor AggregateLoss(const torch::Tensor& per_token, const torch::Tensor& mask,
                            LossAggregation aggregation) {
  TORCH_CHECK(per_token.dim() == 2, "AggregateLoss: expected [B, T], got ", per_token.sizes());
  const torch::Tensor m = internal::MaskLike(mask, per_token, "AggregateLoss");
  switch (aggregation) {
    case LossAggregation::kTokenMean:
      return MaskedMean(per_token, m);
    case LossAggregation::kSeqMeanTokenMean:
      return MaskedMean(per_token, m, /*dim=*/1).mean();
  }
  TORCH_CHECK(false, "AggregateLoss: unknown aggregation");
}

absl::Status Validate(const PolicyLossOptions& options) {
  if (options.dual_clip.has_value() && !(*options.dual_clip > 1)) {
    return absl::InvalidArgumentError("dual_clip must be > 1");
  }
  return ValidateClip(options.clip_low, options.clip_high);
}

PolicyLossResult PpoPolicyLoss(const torch::Tensor& logprobs, const torch::Tensor& old_logprobs,
                               const torch::Tensor& advantages, const torch::Tensor& mask,
                               const PolicyLossOptions& options) {
  CheckSameShapes(logprobs, {old_logprobs, advantages}, "PpoPolicyLoss");
  const torch::Tensor m = internal::MaskLike(mask, logprobs, "PpoPolicyLoss");
  const torch::Tensor log_ratio = logprobs - old_logprobs;
  const torch::Tensor ratio = torch::exp(log_ratio);
  const Surrogate surrogate =
      ClippedSurrogate(ratio, advantages, options.clip_low, options.clip_high);
  torch::Tensor per_token = surrogate.loss;
  if (options.dual_clip.has_value()) {
    per_token = torch::where(advantages < 0,
                             torch::min(per_token, -*options.dual_clip * advantages), per_token);
  }
  PolicyLossResult out;
  out.per_token = per_token * m;
  out.loss = AggregateLoss(out.per_token, m, options.aggregation);
  torch::NoGradGuard no_grad;
  out.clipfrac = MaskedMean(surrogate.clipped.to(m.scalar_type()), m);
  out.approx_kl = 0.5 * MaskedMean(log_ratio.square(), m);
  out.ratio_mean = MaskedMean(ratio, m);
  return out;
}

absl::Status Validate(const ValueLossOptions& options) {
  if (options.clip.has_value() && !(*options.clip >= 0)) {
    return absl::InvalidArgumentError("value clip must be >= 0");
  }
  return absl::OkStatus();
}

ValueLossResult ClippedValueLoss(const torch::Tensor& values, const torch::Tensor& old_values,
                                 const torch::Tensor& returns, const torch::Tensor& mask,
                                 const ValueLossOptions& options) {
  CheckSameShapes(values, {old_values, returns}, "ClippedValueLoss");
  const torch::Tensor m = internal::MaskLike(mask, values, "ClippedValueLoss");
  const torch::Tensor unclipped = (values - returns).square();
  ValueLossResult out;
  if (!options.clip.has_value()) {
    out.loss = 0.5 * AggregateLoss(unclipped, m, options.aggregation);
    out.clipfrac = torch::zeros({}, m.options());
    return out;
  }
  const double eps = *options.clip;
  const torch::Tensor clipped_values = old_values + (values - old_values).clamp(-eps, eps);
  const torch::Tensor clipped = (clipped_values - returns).square();
  out.loss = 0.5 * AggregateLoss(torch::max(unclipped, clipped), m, options.aggregation);
  torch::NoGradGuard no_grad;
  out.clipfrac = MaskedMean((clipped > unclipped).to(m.scalar_type()), m);
  return out;
}

absl::Status Validate(const DecoupledLossOptions& options) {
  if (options.behav_weight_cap.has_value() && !(*options.behav_weight_cap > 0)) {
    return absl::InvalidArgumentError("behav_weight_cap must be > 0");
  }
  return ValidateClip(options.clip_low, options.clip_high);
}

DecoupledLossResult DecoupledPpoLoss(const torch::Tensor& logprobs,
                                     const torch::Tensor& prox_logprobs,
                                     const torch::Tensor& behav_logprobs,
                                     const torch::Tensor& advantages, const torch::Tensor& mask,
                                     const DecoupledLossOptions& options) {
  CheckSameShapes(logprobs, {prox_logprobs, behav_logprobs, advantages}, "DecoupledPpoLoss");
  const torch::Tensor m = internal::MaskLike(mask, logprobs, "DecoupledPpoLoss");
  DecoupledLossResult out;
  {
    torch::NoGradGuard no_grad;
    out.behav_weights = torch::exp(prox_logprobs - behav_logprobs) * m;
    if (options.behav_weight_cap.has_value()) {
      out.behav_weights =
          out.behav_weights.masked_fill(out.behav_weights > *options.behav_weight_cap, 0.0);
    }
  }
  const torch::Tensor ratio = torch::exp(logprobs - prox_logprobs);
  out.per_token = out.behav_weights *
                  ClippedSurrogate(ratio, advantages, options.clip_low, options.clip_high).loss;
  out.loss = out.per_token.sum() / m.sum();
  return out;
}

absl::Status Validate(const GrpoLossOptions& options) {
  if (!(options.kl_coef >= 0)) return absl::InvalidArgumentError("kl_coef must be >= 0");
  return ValidateClip(options.clip_low, options.clip_high);
}

GrpoLossResult GrpoLoss(const torch::Tensor& logprobs, const torch::Tensor& old_logprobs,
                        const torch::Tensor& ref_logprobs, const torch::Tensor& advantages,
                        const torch::Tensor& mask, const GrpoLossOptions& options) {
  CheckSameShapes(logprobs, {old_logprobs, ref_logprobs}, "GrpoLoss");
  const torch::Tensor adv = advantages.dim() == 1 ? advantages.unsqueeze(1) : advantages;
  TORCH_CHECK(adv.dim() == 2 && adv.size(0) == logprobs.size(0) && adv.size(1) == 1,
              "GrpoLoss: expected advantages [B] or [B, 1], got ", advantages.sizes());
  const torch::Tensor m = internal::MaskLike(mask, logprobs, "GrpoLoss");
  const torch::Tensor ratio = torch::exp(logprobs - old_logprobs);
  const Surrogate surrogate = ClippedSurrogate(ratio, adv, options.clip_low, options.clip_high);
  const torch::Tensor kl = KlEstimate(logprobs, ref_logprobs, KlEstimator::kK3);
  GrpoLossResult out;
  out.per_token = (surrogate.loss + options.kl_coef * kl) * m;
  out.loss = AggregateLoss(out.per_token, m, options.aggregation);
  torch::NoGradGuard no_grad;
  out.clipfrac = MaskedMean(surrogate.clipped.to(m.scalar_type()), m);
  out.kl = MaskedMean(kl, m);
  return out;
}

}  // namespace rlhf::rl
