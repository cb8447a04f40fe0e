// One RLHF PPO step composed from the pieces in common/rl, in the order of Ziegler et al. 2019 /
// InstructGPT: scores -> missing-EOS penalty -> per-token KL-shaped rewards -> GAE on the rollout
// values -> whitened advantages (ComputePpoTargets, once per rollout batch), then the clipped
// policy loss + vf_coef * clipped value loss (ComputePpoLoss, once per optimizer step). The KL
// coefficient is an input: the caller owns a KlController and feeds it PpoTargets::kl_obs.
// The critic-free variants (RLOO, GRPO) replace GAE by a group baseline on sequence rewards
// (ComputeGroupPpoTargets) and keep the clipped policy loss. Pure functions; see
// common/rl/stats.h for the conventions.
#ifndef RLHF_COMMON_RL_PPO_STEP_H_
#define RLHF_COMMON_RL_PPO_STEP_H_

#include <torch/torch.h>

#include "absl/status/status.h"
#include "common/rl/losses.h"
#include "common/rl/rewards.h"
#include "common/rl/stats.h"

namespace rlhf::rl {

struct PpoStepOptions {
  // Score penalty for responses cut off before EOS.
  MissingEosPenaltyOptions eos_penalty;
  // KL estimator of the reward penalty and the clamp of the (penalized) score.
  TokenRewardOptions token_rewards;
  // Discounting of the advantages.
  GaeOptions gae;
  // Whitening of the advantages over the batch (shift_mean = true: zero mean).
  WhitenOptions whiten;
  // Clipped surrogate of the policy.
  PolicyLossOptions policy;
  // Clipped value loss.
  ValueLossOptions value;
  // Weight of the value loss in the total.
  double vf_coef = 0.1;
};
absl::Status Validate(const PpoStepOptions& options);

// What the rollout produced for one batch. All [B, T] tensors share the response mask.
struct RolloutBatch {
  torch::Tensor scores;        // [B] reward-model scores of the full responses.
  torch::Tensor contains_eos;  // [B] bool (or 0/1): the response ended with EOS.
  torch::Tensor logprobs;      // [B, T] policy log-probs of the sampled tokens (KL penalty).
  torch::Tensor ref_logprobs;  // [B, T] reference-model log-probs of the same tokens.
  torch::Tensor values;        // [B, T] value estimates at rollout time (GAE).
  torch::Tensor mask;          // [B, T] 1 = response token (EOS included), 0 = padding.
};

// Targets for the optimisation, all detached.
struct PpoTargets {
  torch::Tensor penalized_scores;     // [B] after the missing-EOS penalty.
  torch::Tensor rewards;              // [B, T] per-token rewards.
  torch::Tensor kl;                   // [B, T] KL estimate * mask.
  torch::Tensor advantages;           // [B, T] raw GAE advantages.
  torch::Tensor returns;              // [B, T] value targets.
  torch::Tensor advantages_whitened;  // [B, T] what the policy loss uses.
  torch::Tensor kl_obs;               // 0-dim MeanSequenceKl(kl, mask): for KlController::Update.
};

// Computes the targets of one rollout batch under torch::NoGradGuard.
// REQUIRES: shapes as documented in RolloutBatch; sum(mask) >= 2.
PpoTargets ComputePpoTargets(const RolloutBatch& batch, double kl_coef,
                             const PpoStepOptions& options);

// Critic-free targets (RLOO, GRPO) of a batch whose rows are groups of `group_size` consecutive
// samples of one prompt, under torch::NoGradGuard. Each row's sequence reward is the sum of its
// ComputeTokenRewards rewards (the same shaping as ComputePpoTargets, missing-EOS penalty and score
// clip included): R_i = clip(penalized score_i) - kl_coef * sum_t kl_t. The advantage of every
// response token of row i is GroupAdvantages(R as [B / G, G], group)[i], 0 at padding; it is not
// whitened over the batch (advantages_whitened == advantages: RLOO's baseline already centres
// each group, GRPO's also scales it). `returns` is all zeros (there is no value loss);
// `batch.values` is not read. REQUIRES: shapes as in RolloutBatch; group_size >= 2 divides B.
PpoTargets ComputeGroupPpoTargets(const RolloutBatch& batch, double kl_coef, int64_t group_size,
                                  const GroupAdvantageOptions& group,
                                  const PpoStepOptions& options);

struct PpoLossResult {
  torch::Tensor total;      // 0-dim: policy.loss + vf_coef * value.loss.
  PolicyLossResult policy;  // Policy loss and its diagnostics.
  ValueLossResult value;    // Value loss and its clip fraction.
};

// The loss of one optimizer step. `logprobs` and `values` are the current (differentiable) policy
// log-probs and value estimates; `old_logprobs` is the ratio's denominator and `old_values` the
// anchor of the value clip (both usually the rollout's). Shapes: all [B, T].
// REQUIRES: same shapes.
PpoLossResult ComputePpoLoss(const torch::Tensor& logprobs, const torch::Tensor& values,
                             const torch::Tensor& old_logprobs, const torch::Tensor& old_values,
                             const PpoTargets& targets, const torch::Tensor& mask,
                             const PpoStepOptions& options);

}  // namespace rlhf::rl

#endif  // RLHF_COMMON_RL_PPO_STEP_H_
