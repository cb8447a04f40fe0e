// Fused CPU kernels for the KV-cache inference path. Each replaces a handful of small LibTorch
// ops whose per-op dispatch cost dominates decoding for small models. Inference only (no
// autograd). All take and return contiguous float32 or float64 tensors.
#ifndef RLHF_COMMON_MODEL_KERNELS_H_
#define RLHF_COMMON_MODEL_KERNELS_H_

#include <torch/torch.h>

namespace rlhf::model::kernels {

// out[n, :] = x[n, :] / sqrt(mean(x[n, :]^2) + eps) * weight. x: [N, D]. Returns [N, D].
torch::Tensor RmsNorm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// gate_up: [N, 2H] (gate in the first H columns, up in the last H). Returns silu(gate) * up, [N, H].
torch::Tensor SwiGlu(const torch::Tensor& gate_up);

// Rotates, in place, the first `n_rot_heads` heads of each row of `qkv` ([N, >= n_rot_heads *
// head_dim], contiguous rows) by RoPE in the rotate-half layout at positions[n] (int64 [N]).
// cos/sin: [max_pos, head_dim] tables.
void RopeInplace(torch::Tensor& qkv, int64_t n_rot_heads, int64_t head_dim,
                 const torch::Tensor& positions, const torch::Tensor& cos,
                 const torch::Tensor& sin);

// Grouped-query attention of Tq new queries per sequence over a KV cache.
//   qkv:       [B, Tq, (n_heads + 2 n_kv_heads) * head_dim]; queries are the first n_heads heads.
//   k_cache:   [B, n_kv_heads, head_dim, S] (keys transposed: slots innermost).
//   v_cache:   [B, n_kv_heads, S, head_dim]. Both zero-initialised before their first use.
//   key_valid: [B, S] uint8, 1 where the slot holds a real token.
//   Query i of a sequence sits at slot q_slot0 + i and attends to the valid slots j <= that slot.
// Returns [B, Tq, n_heads * head_dim]; rows with no valid key are zero.
torch::Tensor CachedAttention(const torch::Tensor& qkv, const torch::Tensor& k_cache,
                              const torch::Tensor& v_cache, const torch::Tensor& key_valid,
                              int64_t n_heads, int64_t q_slot0);

}  // namespace rlhf::model::kernels

#endif  // RLHF_COMMON_MODEL_KERNELS_H_
