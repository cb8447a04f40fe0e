// Inner loops of kernels::CachedAttention, written once and compiled twice: for the baseline
// x86-64 ISA (kernels.cc) and with AVX2 + FMA (attention_avx2.cc, chosen at run time when the
// CPU has them). Pure C++ on raw pointers; each function handles tasks [begin, end), one task
// being one (sequence, kv head) pair. Layouts as in kernels.h.
#ifndef RLHF_COMMON_MODEL_INTERNAL_ATTENTION_IMPL_H_
#define RLHF_COMMON_MODEL_INTERNAL_ATTENTION_IMPL_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

namespace rlhf::model::kernels::internal {

// Geometry of one CachedAttention call.
struct AttnShape {
  int64_t b, tq, width, s_max, kvh, hd, n_heads, group, q_slot0, len;
};

// The float32 loops compiled with AVX2 + FMA (attention_avx2.cc). Call only when HasAvx2Fma().
void ScoresF32Avx2(const AttnShape& s, const float* qp, const float* kp, const uint8_t* valid,
                   float* sp, int64_t begin, int64_t end);
void ValuesF32Avx2(const AttnShape& s, const float* pp, const float* vp, float* op,
                   int64_t begin, int64_t end);
bool HasAvx2Fma();

// The templates below are instantiated in two translation units compiled for different ISAs;
// each includer names its own namespace (RLHF_ATTENTION_ISA) so the linker can never merge an
// AVX2 instantiation into the baseline path.
#ifndef RLHF_ATTENTION_ISA
#error "define RLHF_ATTENTION_ISA before including attention_impl.h"
#endif
namespace RLHF_ATTENTION_ISA {

// scores[b, i, head, j] = q.k_j / sqrt(hd) for valid slots j <= q_slot0 + i, -inf elsewhere.
// Keys are transposed ([hd][S] per sequence and kv head) so the inner loops run over slots, in
// register blocks of kBlock slots, without horizontal sums. A query with no valid key gets
// score 0 at slot 0 (its output is then zero: the cache is zero-initialised there).
template <typename T, int HD>
void ScoresRange(const AttnShape& s, const T* qp, const T* kp, const uint8_t* valid, T* sp,
                 int64_t begin, int64_t end) {
  constexpr int kBlock = 16;
  const int64_t hd = HD > 0 ? HD : s.hd;
  const T scale = T(1) / std::sqrt(static_cast<T>(hd));
  const T ninf = -std::numeric_limits<T>::infinity();
  T qs[HD > 0 ? HD : 256];
  for (int64_t task = begin; task < end; ++task) {
    const int64_t bi = task / s.kvh, kv = task % s.kvh;
    const uint8_t* vrow = valid + bi * s.s_max;
    const T* kt = kp + (bi * s.kvh + kv) * hd * s.s_max;
    for (int64_t i = 0; i < s.tq; ++i) {
      const int64_t n = s.q_slot0 + i + 1;  // slots this query may see
      for (int64_t g = 0; g < s.group; ++g) {
        const T* q = qp + (bi * s.tq + i) * s.width + (kv * s.group + g) * hd;
        for (int64_t d = 0; d < hd; ++d) qs[d] = q[d] * scale;
        T* row = sp + ((bi * s.tq + i) * s.n_heads + kv * s.group + g) * s.len;
        int64_t j = 0;
        for (; j + kBlock <= n; j += kBlock) {
          T acc[kBlock] = {};
          for (int64_t d = 0; d < hd; ++d) {
            const T* kd = kt + d * s.s_max + j;
            for (int jj = 0; jj < kBlock; ++jj) acc[jj] += qs[d] * kd[jj];
          }
          for (int jj = 0; jj < kBlock; ++jj) row[j + jj] = vrow[j + jj] ? acc[jj] : ninf;
        }
        for (; j < n; ++j) {
          T acc = 0;
          for (int64_t d = 0; d < hd; ++d) acc += qs[d] * kt[d * s.s_max + j];
          row[j] = vrow[j] ? acc : ninf;
        }
        std::fill(row + n, row + s.len, ninf);
        if (std::all_of(vrow, vrow + n, [](uint8_t v) { return v == 0; })) row[0] = 0;
      }
    }
  }
}

// out[b, i, head, :] = sum over slots j <= q_slot0 + i of p[b, i, head, j] * v_j. p is 0 at
// masked slots and the cache is zero-initialised, so no branch is needed.
template <typename T, int HD>
void ValuesRange(const AttnShape& s, const T* pp, const T* vp, T* op, int64_t begin,
                 int64_t end) {
  const int64_t hd = HD > 0 ? HD : s.hd;
  for (int64_t task = begin; task < end; ++task) {
    const int64_t bi = task / s.kvh, kv = task % s.kvh;
    const T* vbase = vp + (bi * s.kvh + kv) * s.s_max * hd;
    for (int64_t i = 0; i < s.tq; ++i) {
      const int64_t n = s.q_slot0 + i + 1;
      for (int64_t g = 0; g < s.group; ++g) {
        const T* prow = pp + ((bi * s.tq + i) * s.n_heads + kv * s.group + g) * s.len;
        T* o = op + ((bi * s.tq + i) * s.n_heads + kv * s.group + g) * hd;
        T acc[HD > 0 ? HD : 256] = {};
        for (int64_t j = 0; j < n; ++j) {
          const T p = prow[j];
          const T* v = vbase + j * hd;
          for (int64_t d = 0; d < hd; ++d) acc[d] += p * v[d];
        }
        std::copy(acc, acc + hd, o);
      }
    }
  }
}

// Dispatch on the head size: common sizes get fully unrolled inner loops.
template <typename T>
void ScoresAnyHd(const AttnShape& s, const T* qp, const T* kp, const uint8_t* valid, T* sp,
                 int64_t begin, int64_t end) {
  switch (s.hd) {
    case 8: return ScoresRange<T, 8>(s, qp, kp, valid, sp, begin, end);
    case 16: return ScoresRange<T, 16>(s, qp, kp, valid, sp, begin, end);
    case 32: return ScoresRange<T, 32>(s, qp, kp, valid, sp, begin, end);
    case 64: return ScoresRange<T, 64>(s, qp, kp, valid, sp, begin, end);
    case 128: return ScoresRange<T, 128>(s, qp, kp, valid, sp, begin, end);
    default: return ScoresRange<T, 0>(s, qp, kp, valid, sp, begin, end);
  }
}

template <typename T>
void ValuesAnyHd(const AttnShape& s, const T* pp, const T* vp, T* op, int64_t begin,
                 int64_t end) {
  switch (s.hd) {
    case 8: return ValuesRange<T, 8>(s, pp, vp, op, begin, end);
    case 16: return ValuesRange<T, 16>(s, pp, vp, op, begin, end);
    case 32: return ValuesRange<T, 32>(s, pp, vp, op, begin, end);
    case 64: return ValuesRange<T, 64>(s, pp, vp, op, begin, end);
    case 128: return ValuesRange<T, 128>(s, pp, vp, op, begin, end);
    default: return ValuesRange<T, 0>(s, pp, vp, op, begin, end);
  }
}

}  // namespace RLHF_ATTENTION_ISA
}  // namespace rlhf::model::kernels::internal

#endif  // RLHF_COMMON_MODEL_INTERNAL_ATTENTION_IMPL_H_
