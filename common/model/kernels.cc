#include "common/model/kernels.h"

#include <type_traits>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#define RLHF_ATTENTION_ISA baseline
#include "common/model/internal/attention_impl.h"

namespace rlhf::model::kernels {
namespace {

// Grain sizes: below these, work stays on the calling thread (OpenMP fork/join costs ~us).
constexpr int64_t kRowGrain = 16;

}  // namespace

torch::Tensor RmsNorm(const torch::Tensor& x_in, const torch::Tensor& weight, double eps) {
  auto x = x_in.contiguous();
  const int64_t d = x.size(-1), n = x.numel() / d;
  auto out = torch::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "RmsNorm", [&] {
    const scalar_t* xp = x.data_ptr<scalar_t>();
    const scalar_t* wp = weight.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    at::parallel_for(0, n, kRowGrain, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const scalar_t* row = xp + r * d;
        scalar_t ss = 0;
        for (int64_t j = 0; j < d; ++j) ss += row[j] * row[j];
        const scalar_t inv = scalar_t(1) / std::sqrt(ss / scalar_t(d) + scalar_t(eps));
        scalar_t* o = op + r * d;
        for (int64_t j = 0; j < d; ++j) o[j] = row[j] * inv * wp[j];
      }
    });
  });
  return out;
}

torch::Tensor SwiGlu(const torch::Tensor& gate_up_in) {
  auto gu = gate_up_in.contiguous();
  const int64_t h2 = gu.size(-1), h = h2 / 2, n = gu.numel() / h2;
  std::vector<int64_t> shape = gu.sizes().vec();
  shape.back() = h;
  auto out = torch::empty(shape, gu.options());
  AT_DISPATCH_FLOATING_TYPES(gu.scalar_type(), "SwiGlu", [&] {
    const scalar_t* gp = gu.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    at::parallel_for(0, n, kRowGrain, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const scalar_t* g = gp + r * h2;
        const scalar_t* u = g + h;
        scalar_t* o = op + r * h;
        for (int64_t j = 0; j < h; ++j) o[j] = g[j] / (scalar_t(1) + std::exp(-g[j])) * u[j];
      }
    });
  });
  return out;
}

void RopeInplace(torch::Tensor& qkv, int64_t n_rot_heads, int64_t head_dim,
                 const torch::Tensor& positions, const torch::Tensor& cos,
                 const torch::Tensor& sin) {
  const int64_t width = qkv.size(-1), n = qkv.numel() / width, half = head_dim / 2;
  auto pos = positions.contiguous();
  const int64_t* pp = pos.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES(qkv.scalar_type(), "RopeInplace", [&] {
    scalar_t* base = qkv.data_ptr<scalar_t>();
    const scalar_t* cp = cos.data_ptr<scalar_t>();
    const scalar_t* sp = sin.data_ptr<scalar_t>();
    at::parallel_for(0, n, kRowGrain, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const scalar_t* c = cp + pp[r] * head_dim;
        const scalar_t* s = sp + pp[r] * head_dim;
        for (int64_t hh = 0; hh < n_rot_heads; ++hh) {
          scalar_t* x = base + r * width + hh * head_dim;
          for (int64_t i = 0; i < half; ++i) {
            const scalar_t a = x[i], b = x[i + half];
            x[i] = a * c[i] - b * s[i];
            x[i + half] = b * c[i + half] + a * s[i + half];
          }
        }
      }
    });
  });
}

namespace {

using internal::AttnShape;

template <typename T>
void Attend(const AttnShape& s, const torch::Tensor& qkv, const torch::Tensor& k_cache,
            const torch::Tensor& v_cache, const uint8_t* valid, torch::Tensor& out) {
  static const bool avx2 = internal::HasAvx2Fma();
  auto scores = torch::empty({s.b, s.tq, s.n_heads, s.len}, qkv.options());
  const T* qp = qkv.data_ptr<T>();
  const T* kp = k_cache.data_ptr<T>();
  T* sp = scores.data_ptr<T>();
  at::parallel_for(0, s.b * s.kvh, 1, [&](int64_t begin, int64_t end) {
    if constexpr (std::is_same_v<T, float>) {
      if (avx2) return internal::ScoresF32Avx2(s, qp, kp, valid, sp, begin, end);
    }
    internal::baseline::ScoresAnyHd<T>(s, qp, kp, valid, sp, begin, end);
  });
  // Softmax through ATen: its exp is vectorised for the CPU it runs on (AVX2/AVX-512).
  auto probs = torch::softmax(scores, -1);
  const T* pp = probs.data_ptr<T>();
  const T* vp = v_cache.data_ptr<T>();
  T* op = out.data_ptr<T>();
  at::parallel_for(0, s.b * s.kvh, 1, [&](int64_t begin, int64_t end) {
    if constexpr (std::is_same_v<T, float>) {
      if (avx2) return internal::ValuesF32Avx2(s, pp, vp, op, begin, end);
    }
    internal::baseline::ValuesAnyHd<T>(s, pp, vp, op, begin, end);
  });
}

}  // namespace

torch::Tensor CachedAttention(const torch::Tensor& qkv, const torch::Tensor& k_cache,
                              const torch::Tensor& v_cache, const torch::Tensor& key_valid,
                              int64_t n_heads, int64_t q_slot0) {
  TORCH_CHECK(k_cache.size(2) <= 256, "CachedAttention supports head_dim <= 256");
  AttnShape s;
  s.b = qkv.size(0), s.tq = qkv.size(1), s.width = qkv.size(2);
  s.kvh = k_cache.size(1), s.hd = k_cache.size(2), s.s_max = k_cache.size(3);
  s.n_heads = n_heads, s.group = n_heads / s.kvh, s.q_slot0 = q_slot0, s.len = q_slot0 + s.tq;
  auto out = torch::empty({s.b, s.tq, n_heads * s.hd}, qkv.options());
  const uint8_t* valid = key_valid.data_ptr<uint8_t>();
  AT_DISPATCH_FLOATING_TYPES(qkv.scalar_type(), "CachedAttention",
                             [&] { Attend<scalar_t>(s, qkv, k_cache, v_cache, valid, out); });
  return out;
}

namespace internal {

bool HasAvx2Fma() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

}  // namespace internal
}  // namespace rlhf::model::kernels
