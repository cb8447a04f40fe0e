// Reader and writer for the safetensors format (github.com/huggingface/safetensors), the tensor
// container of Hugging Face checkpoints:
//
//   u64 little-endian N | N bytes of UTF-8 JSON header | data region
//
// The header maps each tensor name to {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}
// (byte offsets relative to the start of the data region) plus an optional "__metadata__"
// object of string -> string. Tensor data is contiguous, row-major, little-endian.
//
// Every function here is thread-compatible: they share no state.
#ifndef RLHF_COMMON_CHECKPOINT_SAFETENSORS_H_
#define RLHF_COMMON_CHECKPOINT_SAFETENSORS_H_

#include <torch/torch.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rlhf::checkpoint {

// Tensors with their names, in a meaningful order (file order when read, write order when
// written).
using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// The content of one safetensors file.
struct SafetensorsFile {
  // In the order of their data in the file. Each tensor is a CPU tensor owning its memory.
  NamedTensors tensors;
  // The "__metadata__" entries (empty when the header has none).
  std::map<std::string, std::string> metadata;
};

// Reads the whole file at `path`. Supported dtypes: F64, F32, F16, BF16, I64, I32, I8, U8, BOOL.
// Returns NotFound when `path` does not exist and InvalidArgument, with a message naming `path`
// and the problem, for a malformed file: shorter than 8 bytes, header length beyond the file,
// header not a JSON object, unknown dtype, negative dimensions, data_offsets not [begin, end]
// with begin <= end, byte size != numel * dtype size, offsets beyond the data region,
// overlapping tensors, duplicate names.
absl::StatusOr<SafetensorsFile> ReadSafetensors(const std::string& path);

// Writes `tensors` (any device, any strides; written as contiguous little-endian data in the
// given order) and `metadata` to `path`. The header is padded with spaces to a multiple of 8
// bytes. The file is written to a temporary file and renamed, so `path` never holds a partial
// file. Returns InvalidArgument for an unsupported dtype, an undefined tensor, an empty or
// duplicate name, or the reserved name "__metadata__"; errno-derived errors for I/O failures.
absl::Status WriteSafetensors(const std::string& path, const NamedTensors& tensors,
                              const std::map<std::string, std::string>& metadata = {});

}  // namespace rlhf::checkpoint

#endif  // RLHF_COMMON_CHECKPOINT_SAFETENSORS_H_
