// The attention inner loops for CPUs with AVX2 + FMA (compiled with -mavx2 -mfma, see
// CMakeLists.txt; kernels.cc calls these only where HasAvx2Fma()). Head sizes that are a
// multiple of 8 up to 128 use hand-vectorised loops with several independent accumulators (the
// FMA latency, not the arithmetic, bounds these short loops); other sizes use the portable
// template compiled for this ISA.
#include <immintrin.h>

#include <cstring>

#define RLHF_ATTENTION_ISA avx2
#include "common/model/internal/attention_impl.h"

namespace rlhf::model::kernels::internal {
namespace {

constexpr int kSlotBlock = 32;  // slots per register block in the score loop (4 x 8 lanes)

// row[j] for j in [0, n): q.k_j (q pre-scaled), or -inf where the slot is not valid.
void ScoreRowAvx2(const float* qs, const float* kt, int64_t hd, int64_t s_max,
                  const uint8_t* vrow, int64_t n, float* row) {
  const __m256 ninf = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  int64_t j = 0;
  for (; j + kSlotBlock <= n; j += kSlotBlock) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t d = 0; d < hd; ++d) {
      const __m256 q = _mm256_set1_ps(qs[d]);
      const float* k = kt + d * s_max + j;
      a0 = _mm256_fmadd_ps(q, _mm256_loadu_ps(k), a0);
      a1 = _mm256_fmadd_ps(q, _mm256_loadu_ps(k + 8), a1);
      a2 = _mm256_fmadd_ps(q, _mm256_loadu_ps(k + 16), a2);
      a3 = _mm256_fmadd_ps(q, _mm256_loadu_ps(k + 24), a3);
    }
    const __m256 acc[4] = {a0, a1, a2, a3};
    for (int r = 0; r < 4; ++r) {
      int64_t bytes;
      std::memcpy(&bytes, vrow + j + 8 * r, sizeof(bytes));
      const __m256i v32 = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(bytes));
      const __m256 keep = _mm256_castsi256_ps(_mm256_cmpgt_epi32(v32, _mm256_setzero_si256()));
      _mm256_storeu_ps(row + j + 8 * r, _mm256_blendv_ps(ninf, acc[r], keep));
    }
  }
  for (; j < n; ++j) {
    float acc = 0;
    for (int64_t d = 0; d < hd; ++d) acc += qs[d] * kt[d * s_max + j];
    row[j] = vrow[j] ? acc : -std::numeric_limits<float>::infinity();
  }
}

// o[0, hd) = sum_j p[j] v_j, two slots at a time into separate accumulators.
template <int R>
void ValueRowAvx2(const float* prow, const float* vbase, int64_t n, float* o) {
  constexpr int kHd = 8 * R;
  __m256 a[R], b[R];
  for (int r = 0; r < R; ++r) a[r] = b[r] = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 2 <= n; j += 2) {
    const __m256 p0 = _mm256_set1_ps(prow[j]), p1 = _mm256_set1_ps(prow[j + 1]);
    const float* v0 = vbase + j * kHd;
    for (int r = 0; r < R; ++r) {
      a[r] = _mm256_fmadd_ps(p0, _mm256_loadu_ps(v0 + 8 * r), a[r]);
      b[r] = _mm256_fmadd_ps(p1, _mm256_loadu_ps(v0 + kHd + 8 * r), b[r]);
    }
  }
  if (j < n) {
    const __m256 p0 = _mm256_set1_ps(prow[j]);
    for (int r = 0; r < R; ++r) {
      a[r] = _mm256_fmadd_ps(p0, _mm256_loadu_ps(vbase + j * kHd + 8 * r), a[r]);
    }
  }
  for (int r = 0; r < R; ++r) _mm256_storeu_ps(o + 8 * r, _mm256_add_ps(a[r], b[r]));
}

template <int R>
void ValuesFixed(const AttnShape& s, const float* pp, const float* vp, float* op, int64_t begin,
                 int64_t end) {
  constexpr int kHd = 8 * R;
  for (int64_t task = begin; task < end; ++task) {
    const int64_t bi = task / s.kvh, kv = task % s.kvh;
    const float* vbase = vp + (bi * s.kvh + kv) * s.s_max * kHd;
    for (int64_t i = 0; i < s.tq; ++i) {
      for (int64_t g = 0; g < s.group; ++g) {
        const int64_t head = (bi * s.tq + i) * s.n_heads + kv * s.group + g;
        ValueRowAvx2<R>(pp + head * s.len, vbase, s.q_slot0 + i + 1, op + head * kHd);
      }
    }
  }
}

}  // namespace

void ScoresF32Avx2(const AttnShape& s, const float* qp, const float* kp, const uint8_t* valid,
                   float* sp, int64_t begin, int64_t end) {
  if (s.hd > 256) return avx2::ScoresAnyHd<float>(s, qp, kp, valid, sp, begin, end);
  const float scale = 1.0f / std::sqrt(static_cast<float>(s.hd));
  float qs[256];
  for (int64_t task = begin; task < end; ++task) {
    const int64_t bi = task / s.kvh, kv = task % s.kvh;
    const uint8_t* vrow = valid + bi * s.s_max;
    const float* kt = kp + (bi * s.kvh + kv) * s.hd * s.s_max;
    const bool any_valid = std::any_of(vrow, vrow + s.len, [](uint8_t v) { return v != 0; });
    for (int64_t i = 0; i < s.tq; ++i) {
      const int64_t n = s.q_slot0 + i + 1;
      for (int64_t g = 0; g < s.group; ++g) {
        const float* q = qp + (bi * s.tq + i) * s.width + (kv * s.group + g) * s.hd;
        for (int64_t d = 0; d < s.hd; ++d) qs[d] = q[d] * scale;
        float* row = sp + ((bi * s.tq + i) * s.n_heads + kv * s.group + g) * s.len;
        ScoreRowAvx2(qs, kt, s.hd, s.s_max, vrow, n, row);
        std::fill(row + n, row + s.len, -std::numeric_limits<float>::infinity());
        if (!any_valid || std::all_of(vrow, vrow + n, [](uint8_t v) { return v == 0; })) {
          row[0] = 0;
        }
      }
    }
  }
}

void ValuesF32Avx2(const AttnShape& s, const float* pp, const float* vp, float* op,
                   int64_t begin, int64_t end) {
  switch (s.hd) {
    case 8: return ValuesFixed<1>(s, pp, vp, op, begin, end);
    case 16: return ValuesFixed<2>(s, pp, vp, op, begin, end);
    case 32: return ValuesFixed<4>(s, pp, vp, op, begin, end);
    case 64: return ValuesFixed<8>(s, pp, vp, op, begin, end);
    case 128: return ValuesFixed<16>(s, pp, vp, op, begin, end);
    default: return avx2::ValuesAnyHd<float>(s, pp, vp, op, begin, end);
  }
}

}  // namespace rlhf::model::kernels::internal
