// Fuzz target: the safetensors reader (common/checkpoint/safetensors.h) on arbitrary bytes.
// A file it accepts must write back and read again to the same names, dtypes and shapes.
#include <cstdint>
#include <cstdlib>

#include <torch/torch.h>

#include "common/checkpoint/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace rlhf::checkpoint;
  const std::string path = rlhf::fuzz::WriteInput(data, size, ".safetensors");
  absl::StatusOr<SafetensorsFile> file = ReadSafetensors(path);
  if (!file.ok()) return 0;
  const std::string again = path + ".again";
  if (!WriteSafetensors(again, file->tensors, file->metadata).ok()) std::abort();
  absl::StatusOr<SafetensorsFile> reread = ReadSafetensors(again);
  if (!reread.ok() || reread->tensors.size() != file->tensors.size()) std::abort();
  for (size_t i = 0; i < file->tensors.size(); ++i) {
    const auto& [name, t] = file->tensors[i];
    const auto& [name2, t2] = reread->tensors[i];
    if (name != name2 || t.scalar_type() != t2.scalar_type() || t.sizes() != t2.sizes()) {
      std::abort();
    }
  }
  return 0;
}
