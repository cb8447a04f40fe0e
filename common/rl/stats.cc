#include "common/rl/stats.h"

#include "common/rl/internal/mask.h"

namespace rlhf::rl {

torch::Tensor MaskedMean(const torch::Tensor& x, const torch::Tensor& mask) {
  const torch::Tensor m = internal::MaskLike(mask, x, "MaskedMean");
  return (x * m).sum() / m.sum();
}

torch::Tensor MaskedMean(const torch::Tensor& x, const torch::Tensor& mask, int64_t dim) {
  const torch::Tensor m = internal::MaskLike(mask, x, "MaskedMean");
  return (x * m).sum(dim) / m.sum(dim);
}

torch::Tensor MaskedVar(const torch::Tensor& x, const torch::Tensor& mask, bool unbiased) {
  const torch::Tensor m = internal::MaskLike(mask, x, "MaskedVar");
  const torch::Tensor mean = MaskedMean(x, m);
  const torch::Tensor var = MaskedMean((x - mean).square(), m);
  if (!unbiased) return var;
  const torch::Tensor n = m.sum();
  return var * n / (n - 1);
}

torch::Tensor Whiten(const torch::Tensor& x, const torch::Tensor& mask,
                     const WhitenOptions& options) {
  const torch::Tensor m = internal::MaskLike(mask, x, "Whiten");
  const torch::Tensor mean = MaskedMean(x, m);
  const torch::Tensor var = MaskedVar(x, m, /*unbiased=*/true);
  torch::Tensor whitened = (x - mean) * torch::rsqrt(var + options.eps);
  if (!options.shift_mean) whitened = whitened + mean;
  return whitened * m;
}

torch::Tensor LastValidIndex(const torch::Tensor& mask) {
  TORCH_CHECK(mask.dim() == 2, "LastValidIndex: mask must be [B, T], got ", mask.sizes());
  const torch::Tensor positions =
      torch::arange(mask.size(1), mask.options().dtype(torch::kLong)).expand(mask.sizes());
  return torch::where(mask != 0, positions, torch::zeros_like(positions)).amax(/*dim=*/1);
}

}  // namespace rlhf::rl
