// Fuzz target: the tensor codec (common/codec/tensor_codec.h) on an arbitrary rlhf.v1.Tensor:
// dtypes, shapes and byte counts that disagree. A tensor it decodes encodes back to the same
// bytes.
#include <cstdint>
#include <cstdlib>

#include <torch/torch.h>

#include "common/codec/tensor_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  rlhf::v1::Tensor proto;
  if (!proto.ParseFromArray(data, static_cast<int>(size))) return 0;
  absl::StatusOr<torch::Tensor> t = rlhf::codec::DecodeTensor(proto);
  if (!t.ok()) return 0;
  rlhf::v1::Tensor again;
  if (!rlhf::codec::EncodeTensor(*t, &again).ok()) std::abort();
  if (again.data() != proto.data()) std::abort();
  return 0;
}
