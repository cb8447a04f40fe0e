#include "common/codec/tensor_codec.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status/status_macros.h"
#include "common/status/exception.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the wire format is little-endian; this code copies host bytes as they are");

namespace rlhf::codec {
namespace {

struct DTypeInfo {
  rlhf::v1::DType wire;
  torch::ScalarType torch;
  const char* name;
  int64_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {rlhf::v1::DTYPE_FLOAT32, torch::kFloat32, "float32", 4},
    {rlhf::v1::DTYPE_BFLOAT16, torch::kBFloat16, "bfloat16", 2},
    {rlhf::v1::DTYPE_FLOAT16, torch::kFloat16, "float16", 2},
    {rlhf::v1::DTYPE_INT64, torch::kInt64, "int64", 8},
    {rlhf::v1::DTYPE_INT32, torch::kInt32, "int32", 4},
    {rlhf::v1::DTYPE_FLOAT64, torch::kFloat64, "float64", 8},
};

const DTypeInfo* FindWire(rlhf::v1::DType dtype) {
  for (const DTypeInfo& d : kDTypes) {
    if (d.wire == dtype) return &d;
  }
  return nullptr;
}

template <typename Sizes>
std::string ShapeString(const Sizes& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

std::string TorchDTypeName(torch::ScalarType type) {
  absl::StatusOr<rlhf::v1::DType> wire = ToWireDType(type);
  return wire.ok() ? WireDTypeName(*wire) : std::string(c10::toString(type));
}

}  // namespace

absl::StatusOr<rlhf::v1::DType> ToWireDType(torch::ScalarType type) {
  for (const DTypeInfo& d : kDTypes) {
    if (d.torch == type) return d.wire;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("dtype ", c10::toString(type),
                   " cannot be sent (supported: float32, bfloat16, float16, float64, int64, "
                   "int32)"));
}

absl::StatusOr<torch::ScalarType> FromWireDType(rlhf::v1::DType dtype) {
  if (dtype == rlhf::v1::DTYPE_UNSPECIFIED) {
    return absl::InvalidArgumentError("dtype is DTYPE_UNSPECIFIED");
  }
  const DTypeInfo* info = FindWire(dtype);
  if (info == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("unknown dtype ", static_cast<int>(dtype)));
  }
  return info->torch;
}

std::string WireDTypeName(rlhf::v1::DType dtype) {
  const DTypeInfo* info = FindWire(dtype);
  if (info != nullptr) return info->name;
  if (dtype == rlhf::v1::DTYPE_UNSPECIFIED) return "DTYPE_UNSPECIFIED";
  return absl::StrCat("DTYPE(", static_cast<int>(dtype), ")");
}

absl::StatusOr<int64_t> WireByteSize(rlhf::v1::DType dtype, absl::Span<const int64_t> shape) {
  RLHF_RETURN_IF_ERROR(FromWireDType(dtype).status());
  int64_t bytes = FindWire(dtype)->size;
  for (int64_t dim : shape) {
    if (dim < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("shape ", ShapeString(shape), " has a negative dimension"));
    }
    if (__builtin_mul_overflow(bytes, dim, &bytes)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "shape ", ShapeString(shape), " of ", WireDTypeName(dtype), " overflows int64 bytes"));
    }
  }
  return bytes;
}

absl::StatusOr<torch::Tensor> ToContiguousCpu(const torch::Tensor& tensor) {
  if (!tensor.defined()) return absl::InvalidArgumentError("tensor is undefined");
  try {
    return tensor.to(torch::kCPU).contiguous();
  } catch (...) {
    return status::CurrentExceptionToStatus("copying tensor to contiguous CPU memory failed");
  }
}

absl::Status EncodeTensor(const torch::Tensor& tensor, rlhf::v1::Tensor* out) {
  out->Clear();
  if (!tensor.defined()) return absl::InvalidArgumentError("cannot encode an undefined tensor");
  RLHF_ASSIGN_OR_RETURN(const rlhf::v1::DType dtype, ToWireDType(tensor.scalar_type()));
  RLHF_ASSIGN_OR_RETURN(const torch::Tensor cpu, ToContiguousCpu(tensor));
  out->set_dtype(dtype);
  for (int64_t dim : cpu.sizes()) out->add_shape(dim);
  const size_t nbytes = cpu.numel() * cpu.element_size();
  std::string* data = out->mutable_data();
  data->resize(nbytes);
  if (nbytes > 0) std::memcpy(data->data(), cpu.data_ptr(), nbytes);
  return absl::OkStatus();
}

absl::StatusOr<torch::Tensor> DecodeTensor(const rlhf::v1::Tensor& proto) {
  RLHF_ASSIGN_OR_RETURN(const torch::ScalarType type, FromWireDType(proto.dtype()));
  const absl::Span<const int64_t> shape(proto.shape().data(), proto.shape_size());
  RLHF_ASSIGN_OR_RETURN(const int64_t expected, WireByteSize(proto.dtype(), shape));
  if (static_cast<uint64_t>(expected) != proto.data().size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor data has ", proto.data().size(), " bytes, expected ", expected,
                     " for ", WireDTypeName(proto.dtype()), " ", ShapeString(shape)));
  }
  try {
    torch::Tensor tensor = torch::empty(c10::IntArrayRef(shape.data(), shape.size()),
                                        torch::TensorOptions().dtype(type));
    if (expected > 0) std::memcpy(tensor.data_ptr(), proto.data().data(), expected);
    return tensor;
  } catch (...) {
    return status::CurrentExceptionToStatus("allocating decoded tensor failed");
  }
}

absl::Status CheckTensor(const torch::Tensor& tensor, torch::ScalarType type,
                         const std::vector<int64_t>& shape, const std::string& what) {
  const std::string expected = absl::StrCat(TorchDTypeName(type), " ", ShapeString(shape));
  if (!tensor.defined()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": expected ", expected, ", got none"));
  }
  bool match = tensor.scalar_type() == type && tensor.dim() == static_cast<int64_t>(shape.size());
  for (size_t i = 0; match && i < shape.size(); ++i) {
    match = shape[i] == -1 || shape[i] == tensor.size(static_cast<int64_t>(i));
  }
  if (match) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(what, ": expected ", expected, ", got ",
                                                 TorchDTypeName(tensor.scalar_type()), " ",
                                                 ShapeString(tensor.sizes())));
}

}  // namespace rlhf::codec
