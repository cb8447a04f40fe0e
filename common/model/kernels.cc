#include "common/model/kernels.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <limits>
#include <vector>

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

torch::Tensor CachedAttention(const torch::Tensor& qkv, const torch::Tensor& k_cache,
                              const torch::Tensor& v_cache, const torch::Tensor& key_valid,
                              int64_t n_heads, int64_t q_slot0) {
  const int64_t b = qkv.size(0), tq = qkv.size(1), width = qkv.size(2);
  const int64_t s_max = k_cache.size(1), kvh = k_cache.size(2), hd = k_cache.size(3);
  const int64_t group = n_heads / kvh;
  auto out = torch::empty({b, tq, n_heads * hd}, qkv.options());
  const uint8_t* valid = key_valid.data_ptr<uint8_t>();
  AT_DISPATCH_FLOATING_TYPES(qkv.scalar_type(), "CachedAttention", [&] {
    const scalar_t* qp = qkv.data_ptr<scalar_t>();
    const scalar_t* kp = k_cache.data_ptr<scalar_t>();
    const scalar_t* vp = v_cache.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    const scalar_t scale = scalar_t(1) / std::sqrt(static_cast<scalar_t>(hd));
    // One task = one (sequence, query, head). Grain keeps tiny batches on one thread.
    const int64_t tasks = b * tq * n_heads;
    const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, (q_slot0 + tq) * hd));
    at::parallel_for(0, tasks, grain, [&](int64_t begin, int64_t end) {
      std::vector<scalar_t> scores(q_slot0 + tq);
      for (int64_t task = begin; task < end; ++task) {
        const int64_t head = task % n_heads;
        const int64_t i = (task / n_heads) % tq;
        const int64_t bi = task / (n_heads * tq);
        const int64_t kv = head / group;
        const int64_t last = q_slot0 + i;
        const scalar_t* q = qp + (bi * tq + i) * width + head * hd;
        const uint8_t* vrow = valid + bi * s_max;
        scalar_t mx = -std::numeric_limits<scalar_t>::infinity();
        for (int64_t j = 0; j <= last; ++j) {
          if (!vrow[j]) continue;
          const scalar_t* k = kp + ((bi * s_max + j) * kvh + kv) * hd;
          scalar_t dot = 0;
          for (int64_t d = 0; d < hd; ++d) dot += q[d] * k[d];
          scores[j] = dot * scale;
          mx = std::max(mx, scores[j]);
        }
        scalar_t* o = op + (bi * tq + i) * n_heads * hd + head * hd;
        for (int64_t d = 0; d < hd; ++d) o[d] = 0;
        if (mx == -std::numeric_limits<scalar_t>::infinity()) continue;
        scalar_t sum = 0;
        for (int64_t j = 0; j <= last; ++j) {
          if (!vrow[j]) continue;
          const scalar_t p = std::exp(scores[j] - mx);
          sum += p;
          const scalar_t* v = vp + ((bi * s_max + j) * kvh + kv) * hd;
          for (int64_t d = 0; d < hd; ++d) o[d] += p * v[d];
        }
        const scalar_t inv = scalar_t(1) / sum;
        for (int64_t d = 0; d < hd; ++d) o[d] *= inv;
      }
    });
  });
  return out;
}

}  // namespace rlhf::model::kernels
