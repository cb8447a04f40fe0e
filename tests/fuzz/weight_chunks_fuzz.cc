// Fuzz target: the weight-chunk assembler (common/codec/weight_chunks.h) on a stream of
// arbitrary rlhf.v1.WeightChunk messages (parts of the input between separators). The first
// byte of the input decides whether chunks keep their CRC (even) or get a correct one (odd), so
// that the fuzzer gets past the CRC check too. A stream it accepts yields tensors whose byte
// sizes add up to what the last chunk declared.
#include <cstdint>
#include <cstdlib>

#include <torch/torch.h>

#include "common/codec/crc32c.h"
#include "common/codec/weight_chunks.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool fix_crc = (data[0] & 1) != 0;
  rlhf::codec::WeightAssembler assembler(/*max_total_bytes=*/1 << 20);
  int64_t declared = -1;
  for (const std::string& part : rlhf::fuzz::SplitInput(data + 1, size - 1)) {
    rlhf::v1::WeightChunk chunk;
    if (!chunk.ParseFromString(part)) continue;
    if (fix_crc) chunk.set_crc32c(rlhf::codec::Crc32c(chunk.data()));
    if (chunk.last()) declared = chunk.total_bytes();
    if (!assembler.Add(chunk).ok()) return 0;
  }
  absl::StatusOr<rlhf::codec::NamedTensors> tensors = assembler.Finish();
  if (!tensors.ok()) return 0;
  int64_t bytes = 0;
  for (const auto& [name, t] : *tensors) bytes += t.numel() * static_cast<int64_t>(t.element_size());
  if (bytes != declared) std::abort();
  return 0;
}
