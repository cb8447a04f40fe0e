// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum on every WeightChunk.
// Uses the SSE4.2 crc32 instruction when the CPU has it (checked once at run time) and a
// slicing-by-8 table otherwise; both give identical results.
//
// Every function here is thread-safe: they share only constant tables.
#ifndef RLHF_COMMON_CODEC_CRC32C_H_
#define RLHF_COMMON_CODEC_CRC32C_H_

#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"

namespace rlhf::codec {

// Returns the CRC32C of the concatenation A + data[0, n), where `crc` is the CRC32C of A
// (0 for the empty string). REQUIRES: data != nullptr unless n == 0.
uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t n);

// Returns the CRC32C of `data`. Crc32c("123456789") == 0xE3069283.
inline uint32_t Crc32c(absl::string_view data) { return Crc32cExtend(0, data.data(), data.size()); }

}  // namespace rlhf::codec

#endif  // RLHF_COMMON_CODEC_CRC32C_H_
