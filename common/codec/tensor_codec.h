// The one place tensors cross the wire: torch::Tensor <-> rlhf.v1.Tensor (dtype, shape,
// row-major little-endian bytes), plus the dtype and size helpers that the weight-chunk
// streamer shares. No service serialises tensors by itself.
//
// Every function here is thread-safe: they share no state.
#ifndef RLHF_COMMON_CODEC_TENSOR_CODEC_H_
#define RLHF_COMMON_CODEC_TENSOR_CODEC_H_

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "rlhf/v1/tensor.pb.h"

namespace rlhf::codec {

// Returns the wire dtype of `type`; InvalidArgument for dtypes the wire does not carry (only
// float32, bfloat16, float16, float64, int64 and int32 are supported).
absl::StatusOr<rlhf::v1::DType> ToWireDType(torch::ScalarType type);

// Returns the torch dtype of `dtype`; InvalidArgument for DTYPE_UNSPECIFIED and for values
// that are not in the enum (e.g. from a newer peer).
absl::StatusOr<torch::ScalarType> FromWireDType(rlhf::v1::DType dtype);

// Returns "float32", "bfloat16", ... or "DTYPE(<number>)" for unknown values; for messages.
std::string WireDTypeName(rlhf::v1::DType dtype);

// Returns the number of bytes of a tensor of `dtype` and `shape`: product(shape) * element
// size. InvalidArgument for a bad dtype (as FromWireDType), a negative dimension or a product
// that overflows int64.
absl::StatusOr<int64_t> WireByteSize(rlhf::v1::DType dtype, absl::Span<const int64_t> shape);

// Returns `tensor` as a contiguous CPU tensor (itself when it already is one; otherwise a
// copy). InvalidArgument for an undefined tensor; Internal, with LibTorch's message, when the
// copy fails.
absl::StatusOr<torch::Tensor> ToContiguousCpu(const torch::Tensor& tensor);

// Replaces *out with `tensor` (any device, any strides) in wire form. InvalidArgument for an
// undefined tensor or an unsupported dtype; Internal when copying off the device fails.
// REQUIRES: out != nullptr.
absl::Status EncodeTensor(const torch::Tensor& tensor, rlhf::v1::Tensor* out);

// Returns a new CPU tensor owning a copy of `proto`'s data. InvalidArgument, naming the
// problem, for an unspecified or unknown dtype, a negative dimension, a shape whose byte size
// overflows, or data whose size is not product(shape) * element size (the message gives the
// expected and the actual byte counts).
absl::StatusOr<torch::Tensor> DecodeTensor(const rlhf::v1::Tensor& proto);

// Checks a decoded tensor against what the caller expects: dtype `type` and `shape`, where -1
// matches any size. Returns OK, or InvalidArgument of the form
// "<what>: expected float32 [-1, 3], got int64 [2, 4]". `what` names the tensor for the peer
// (e.g. "LogProbsRequest.tokens").
absl::Status CheckTensor(const torch::Tensor& tensor, torch::ScalarType type,
                         const std::vector<int64_t>& shape, const std::string& what);

}  // namespace rlhf::codec

#endif  // RLHF_COMMON_CODEC_TENSOR_CODEC_H_
