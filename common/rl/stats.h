// Masked statistics over right-padded token tensors: the building blocks of the RLHF/PPO math in
// common/rl. Pure functions on LibTorch tensors: no state, no I/O, inputs are never modified, and
// results stay on the autograd graph (gradients flow to `x`, never to `mask`).
//
// Conventions shared by all of common/rl:
//   * Token tensors are [B, T] over response tokens, right-padded.
//   * `mask` has the shape of the values it masks, 1 = real token (EOS included), 0 = padding. Any
//     dtype (bool, integer or floating); it is converted to the dtype of the values. Values at
//     padded positions are ignored but must be finite (they are multiplied by 0).
//   * float32 and float64 both work; results have the dtype and device of the values.
//   * Shape mismatches are programmer errors and fail a TORCH_CHECK (c10::Error); nothing else in
//     common/rl throws. Degenerate statistics (an empty mask) give NaN/Inf rather than an error.
#ifndef RLHF_COMMON_RL_STATS_H_
#define RLHF_COMMON_RL_STATS_H_

#include <torch/torch.h>

#include <cstdint>

namespace rlhf::rl {

// A closed interval [low, high] for clamping. REQUIRES (checked by the Validate functions that
// take one): low <= high.
struct ClipRange {
  double low = 0.0;
  double high = 0.0;
};

// Returns sum(x * mask) / sum(mask) over all elements, a 0-dim tensor ("token mean").
// REQUIRES: mask.sizes() == x.sizes(); sum(mask) > 0 for a finite result.
torch::Tensor MaskedMean(const torch::Tensor& x, const torch::Tensor& mask);

// Returns sum(x * mask, dim) / sum(mask, dim): `dim` is reduced (e.g. [B, T], dim -1 -> [B]).
// REQUIRES: mask.sizes() == x.sizes(); every slice along `dim` has a real element.
torch::Tensor MaskedMean(const torch::Tensor& x, const torch::Tensor& mask, int64_t dim);

// Returns the masked variance of all real elements, a 0-dim tensor: mean_m((x - mean_m(x))^2),
// times n / (n - 1) with n = sum(mask) when `unbiased`.
// REQUIRES: mask.sizes() == x.sizes(); sum(mask) >= 2 when unbiased.
torch::Tensor MaskedVar(const torch::Tensor& x, const torch::Tensor& mask, bool unbiased = true);

struct WhitenOptions {
  // true: return (x - mu) / sigma (mean 0). false: add mu back (only the scale is normalized).
  bool shift_mean = true;
  // Added to the unbiased variance before the square root.
  double eps = 1e-8;
};

// Returns (x - mu) / sqrt(var + eps) [+ mu] * mask, with mu = MaskedMean(x, mask) and
// var = MaskedVar(x, mask, /*unbiased=*/true) taken over the whole batch. Padded entries are 0.
// REQUIRES: mask.sizes() == x.sizes(); sum(mask) >= 2.
torch::Tensor Whiten(const torch::Tensor& x, const torch::Tensor& mask,
                     const WhitenOptions& options = {});

// Returns, for each row of a [B, T] mask, the index of its last real token: [B] int64. A row with
// no real token gives 0.
// REQUIRES: mask.dim() == 2.
torch::Tensor LastValidIndex(const torch::Tensor& mask);

}  // namespace rlhf::rl

#endif  // RLHF_COMMON_RL_STATS_H_
