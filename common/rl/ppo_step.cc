#include "common/rl/ppo_step.h"

#include <utility>

namespace rlhf::rl {

absl::Status Validate(const PpoStepOptions& options) {
  for (const absl::Status& status : {Validate(options.token_rewards), Validate(options.gae),
                                     Validate(options.policy), Validate(options.value)}) {
    if (!status.ok()) return status;
  }
  if (!(options.vf_coef >= 0)) return absl::InvalidArgumentError("vf_coef must be >= 0");
  return absl::OkStatus();
}

namespace {

// The missing-EOS penalty and the per-token KL-shaped rewards: what GAE and the group baselines
// start from.
PpoTargets ShapedRewards(const RolloutBatch& batch, double kl_coef, const PpoStepOptions& options) {
  PpoTargets out;
  out.penalized_scores =
      ApplyMissingEosPenalty(batch.scores, batch.contains_eos, options.eos_penalty);
  TokenRewards rewards =
      ComputeTokenRewards(out.penalized_scores, batch.logprobs, batch.ref_logprobs, batch.mask,
                          kl_coef, options.token_rewards);
  out.rewards = std::move(rewards.rewards);
  out.kl = std::move(rewards.kl);
  return out;
}

}  // namespace

PpoTargets ComputePpoTargets(const RolloutBatch& batch, double kl_coef,
                             const PpoStepOptions& options) {
  torch::NoGradGuard no_grad;
  PpoTargets out = ShapedRewards(batch, kl_coef, options);
  GaeResult gae = ComputeGae(out.rewards, batch.values, batch.mask, options.gae);
  out.advantages = std::move(gae.advantages);
  out.returns = std::move(gae.returns);
  out.advantages_whitened = Whiten(out.advantages, batch.mask, options.whiten);
  out.kl_obs = MeanSequenceKl(out.kl, batch.mask);
  return out;
}

PpoTargets ComputeGroupPpoTargets(const RolloutBatch& batch, double kl_coef, int64_t group_size,
                                  const GroupAdvantageOptions& group,
                                  const PpoStepOptions& options) {
  torch::NoGradGuard no_grad;
  TORCH_CHECK(group_size >= 2 && batch.mask.size(0) % group_size == 0,
              "ComputeGroupPpoTargets: ", batch.mask.size(0), " rows are not groups of ",
              group_size);
  PpoTargets out = ShapedRewards(batch, kl_coef, options);
  const torch::Tensor sequence_rewards = out.rewards.sum(/*dim=*/1);
  const torch::Tensor advantages =
      GroupAdvantages(sequence_rewards.view({-1, group_size}), group).reshape({-1});
  out.advantages = advantages.unsqueeze(1) * batch.mask;
  out.advantages_whitened = out.advantages;
  out.returns = torch::zeros_like(out.advantages);
  out.kl_obs = MeanSequenceKl(out.kl, batch.mask);
  return out;
}

PpoLossResult ComputePpoLoss(const torch::Tensor& logprobs, const torch::Tensor& values,
                             const torch::Tensor& old_logprobs, const torch::Tensor& old_values,
                             const PpoTargets& targets, const torch::Tensor& mask,
                             const PpoStepOptions& options) {
  PpoLossResult out;
  out.policy =
      PpoPolicyLoss(logprobs, old_logprobs, targets.advantages_whitened, mask, options.policy);
  out.value = ClippedValueLoss(values, old_values, targets.returns, mask, options.value);
  out.total = out.policy.loss + options.vf_coef * out.value.loss;
  return out;
}

}  // namespace rlhf::rl
