// The attention inner loops compiled with -mavx2 -mfma (see CMakeLists.txt); selected at run
// time by kernels.cc only on CPUs that support both.
#define RLHF_ATTENTION_ISA avx2
#include "common/model/internal/attention_impl.h"

namespace rlhf::model::kernels::internal {

void ScoresF32Avx2(const AttnShape& s, const float* qp, const float* kp, const uint8_t* valid,
                   float* sp, int64_t begin, int64_t end) {
  avx2::ScoresAnyHd<float>(s, qp, kp, valid, sp, begin, end);
}

void ValuesF32Avx2(const AttnShape& s, const float* pp, const float* vp, float* op,
                   int64_t begin, int64_t end) {
  avx2::ValuesAnyHd<float>(s, pp, vp, op, begin, end);
}

}  // namespace rlhf::model::kernels::internal
