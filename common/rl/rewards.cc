#include "common/rl/rewards.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "common/rl/internal/mask.h"

namespace rlhf::rl {
namespace {

void CheckSameShape(const torch::Tensor& a, const torch::Tensor& b, const char* what) {
  TORCH_CHECK(a.sizes() == b.sizes(), what, ": shape mismatch ", a.sizes(), " vs ", b.sizes());
}

void CheckTokenTensor(const torch::Tensor& x, const char* what) {
  TORCH_CHECK(x.dim() == 2, what, ": expected a [B, T] tensor, got ", x.sizes());
}

// x shifted one step left along T with a 0 appended: out[:, t] = x[:, t + 1], out[:, T-1] = 0.
torch::Tensor NextStep(const torch::Tensor& x) {
  return torch::constant_pad_nd(x.slice(/*dim=*/1, /*start=*/1), {0, 1});
}

// acc_t = delta_t + discount_t * acc_{t+1}, acc_T = 0, along dim 1 of [B, T] tensors.
torch::Tensor ReverseDiscountedSum(const torch::Tensor& delta, const torch::Tensor& discount) {
  const int64_t steps = delta.size(1);
  std::vector<torch::Tensor> acc(steps);
  torch::Tensor next = torch::zeros({delta.size(0)}, delta.options());
  for (int64_t t = steps - 1; t >= 0; --t) {
    next = delta.select(1, t) + discount.select(1, t) * next;
    acc[t] = next;
  }
  return torch::stack(acc, /*dim=*/1);
}

absl::Status CheckInRange(double value, double low, double high, const char* name) {
  if (value >= low && value <= high) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(name, " must be in [", low, ", ", high, "], got ", value));
}

}  // namespace

torch::Tensor KlEstimate(const torch::Tensor& logprobs, const torch::Tensor& ref_logprobs,
                         KlEstimator estimator) {
  CheckSameShape(logprobs, ref_logprobs, "KlEstimate");
  const torch::Tensor log_ratio = logprobs - ref_logprobs;
  switch (estimator) {
    case KlEstimator::kK1:
      return log_ratio;
    case KlEstimator::kK2:
      return 0.5 * log_ratio.square();
    case KlEstimator::kK3:
      return torch::exp(-log_ratio) - 1 + log_ratio;
  }
  TORCH_CHECK(false, "KlEstimate: unknown estimator");
}

torch::Tensor MeanSequenceKl(const torch::Tensor& kl, const torch::Tensor& mask) {
  CheckTokenTensor(kl, "MeanSequenceKl");
  const torch::Tensor m = internal::MaskLike(mask, kl, "MeanSequenceKl");
  return (kl * m).sum(/*dim=*/1).mean();
}

torch::Tensor ApplyMissingEosPenalty(const torch::Tensor& scores, const torch::Tensor& contains_eos,
                                     const MissingEosPenaltyOptions& options) {
  TORCH_CHECK(scores.dim() == 1 && contains_eos.sizes() == scores.sizes(),
              "ApplyMissingEosPenalty: expected scores [B] and contains_eos [B], got ",
              scores.sizes(), " and ", contains_eos.sizes());
  const torch::Tensor missing = (contains_eos == 0).to(scores.device());
  const torch::Tensor penalized = options.mode == MissingEosMode::kSubtract
                                      ? scores - options.penalty
                                      : torch::full_like(scores, options.penalty);
  return torch::where(missing, penalized, scores);
}

TokenRewards ComputeTokenRewards(const torch::Tensor& scores, const torch::Tensor& logprobs,
                                 const torch::Tensor& ref_logprobs, const torch::Tensor& mask,
                                 double kl_coef, const TokenRewardOptions& options) {
  CheckTokenTensor(logprobs, "ComputeTokenRewards");
  TORCH_CHECK(scores.dim() == 1 && scores.size(0) == logprobs.size(0),
              "ComputeTokenRewards: expected scores [B], got ", scores.sizes());
  const torch::Tensor m = internal::MaskLike(mask, logprobs, "ComputeTokenRewards");
  TokenRewards out;
  out.kl = KlEstimate(logprobs, ref_logprobs, options.estimator) * m;
  torch::Tensor score = scores.to(logprobs.scalar_type());
  if (options.score_clip.has_value()) {
    score = score.clamp(options.score_clip->low, options.score_clip->high);
  }
  out.rewards = (-kl_coef * out.kl)
                    .scatter_add(/*dim=*/1, LastValidIndex(m).unsqueeze(1), score.unsqueeze(1));
  return out;
}

absl::Status Validate(const TokenRewardOptions& options) {
  if (options.score_clip.has_value() && !(options.score_clip->low <= options.score_clip->high)) {
    return absl::InvalidArgumentError("score_clip: low must be <= high");
  }
  return absl::OkStatus();
}

GaeResult ComputeGae(const torch::Tensor& rewards, const torch::Tensor& values,
                     const torch::Tensor& mask, const GaeOptions& options) {
  CheckTokenTensor(values, "ComputeGae");
  CheckSameShape(rewards, values, "ComputeGae");
  const torch::Tensor m = internal::MaskLike(mask, values, "ComputeGae");
  const torch::Tensor v = values * m;
  const torch::Tensor r = rewards * m;
  const torch::Tensor delta = r + options.gamma * NextStep(v) - v;
  GaeResult out;
  out.advantages =
      ReverseDiscountedSum(delta, torch::full_like(delta, options.gamma * options.lambda)) * m;
  out.returns = (out.advantages + v) * m;
  return out;
}

absl::Status Validate(const GaeOptions& options) {
  absl::Status status = CheckInRange(options.gamma, 0.0, 1.0, "gamma");
  if (!status.ok()) return status;
  return CheckInRange(options.lambda, 0.0, 1.0, "lambda");
}

VtraceResult ComputeVtrace(const torch::Tensor& behaviour_logprobs,
                           const torch::Tensor& target_logprobs, const torch::Tensor& rewards,
                           const torch::Tensor& values, const torch::Tensor& mask,
                           const VtraceOptions& options) {
  CheckTokenTensor(values, "ComputeVtrace");
  CheckSameShape(behaviour_logprobs, values, "ComputeVtrace");
  CheckSameShape(target_logprobs, values, "ComputeVtrace");
  CheckSameShape(rewards, values, "ComputeVtrace");
  const torch::Tensor m = internal::MaskLike(mask, values, "ComputeVtrace");
  const torch::Tensor ratio = torch::exp(target_logprobs - behaviour_logprobs) * m;
  const torch::Tensor rho = ratio.clamp_max(options.rho_bar);
  const torch::Tensor c = ratio.clamp_max(options.c_bar);
  const torch::Tensor v = values * m;
  const torch::Tensor r = rewards * m;
  const torch::Tensor delta = rho * (r + options.gamma * NextStep(v) - v);
  VtraceResult out;
  out.vs = (v + ReverseDiscountedSum(delta, options.gamma * c)) * m;
  out.pg_advantages = rho * (r + options.gamma * NextStep(out.vs) - v) * m;
  return out;
}

absl::Status Validate(const VtraceOptions& options) {
  absl::Status status = CheckInRange(options.gamma, 0.0, 1.0, "gamma");
  if (!status.ok()) return status;
  if (!(options.rho_bar > 0) || !(options.c_bar > 0)) {
    return absl::InvalidArgumentError("rho_bar and c_bar must be > 0");
  }
  return absl::OkStatus();
}

torch::Tensor TruncatedIsWeight(const torch::Tensor& trainer_logprobs,
                                const torch::Tensor& sampler_logprobs, const ClipRange& range) {
  CheckSameShape(trainer_logprobs, sampler_logprobs, "TruncatedIsWeight");
  return torch::exp(trainer_logprobs - sampler_logprobs).clamp(range.low, range.high);
}

torch::Tensor GroupAdvantages(const torch::Tensor& rewards, const GroupAdvantageOptions& options) {
  TORCH_CHECK(rewards.dim() == 2 && rewards.size(1) >= 2,
              "GroupAdvantages: expected rewards [N, G] with G >= 2, got ", rewards.sizes());
  const torch::Tensor mean = rewards.mean(/*dim=*/1, /*keepdim=*/true);
  switch (options.baseline) {
    case GroupBaseline::kMeanStd:
      return (rewards - mean) /
             (rewards.std(/*dim=*/1, /*unbiased=*/true, /*keepdim=*/true) + options.eps);
    case GroupBaseline::kMean:
      return rewards - mean;
    case GroupBaseline::kLeaveOneOut: {
      const double others = static_cast<double>(rewards.size(1) - 1);
      return rewards - (rewards.sum(/*dim=*/1, /*keepdim=*/true) - rewards) / others;
    }
  }
  TORCH_CHECK(false, "GroupAdvantages: unknown baseline");
}

absl::Status Validate(const GroupAdvantageOptions& options) {
  if (!(options.eps >= 0)) return absl::InvalidArgumentError("eps must be >= 0");
  return absl::OkStatus();
}

}  // namespace rlhf::rl
