// Internal to common/rl: the one place masks are checked and converted.
#ifndef RLHF_COMMON_RL_INTERNAL_MASK_H_
#define RLHF_COMMON_RL_INTERNAL_MASK_H_

#include <torch/torch.h>

namespace rlhf::rl::internal {

// Checks (TORCH_CHECK) that `mask` has the shape of `x` and returns it in x's dtype and device.
// `what` names the calling function in the error message.
inline torch::Tensor MaskLike(const torch::Tensor& mask, const torch::Tensor& x, const char* what) {
  TORCH_CHECK(mask.sizes() == x.sizes(), what, ": mask shape ", mask.sizes(),
              " does not match values shape ", x.sizes());
  return mask.to(x.device(), x.scalar_type());
}

}  // namespace rlhf::rl::internal

#endif  // RLHF_COMMON_RL_INTERNAL_MASK_H_
