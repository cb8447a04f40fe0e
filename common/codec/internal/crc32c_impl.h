// The two CRC32C implementations behind Crc32cExtend, exposed so that tests can check that they
// agree. Both take and return the finished CRC (not the inverted running state), exactly like
// Crc32cExtend. Thread-safe.
#ifndef RLHF_COMMON_CODEC_INTERNAL_CRC32C_IMPL_H_
#define RLHF_COMMON_CODEC_INTERNAL_CRC32C_IMPL_H_

#include <cstddef>
#include <cstdint>

namespace rlhf::codec::internal {

// Slicing-by-8 table implementation; works on every CPU.
uint32_t Crc32cPortable(uint32_t crc, const void* data, size_t n);

// Returns true when this CPU has SSE4.2 and the binary was built for x86-64, i.e. when
// Crc32cSse42 may be called.
bool Crc32cHardwareAvailable();

// SSE4.2 crc32 instruction implementation. REQUIRES: Crc32cHardwareAvailable().
uint32_t Crc32cSse42(uint32_t crc, const void* data, size_t n);

// Three interleaved SSE4.2 streams joined with Crc32cCombine (about 3x Crc32cSse42 on large
// buffers); Crc32cSse42 below 12 KiB.
uint32_t Crc32cSse42ThreeWay(uint32_t crc, const void* data, size_t n);

// The CRC of A || B from crc(A), crc(B) and |B| (zlib's crc32_combine, for CRC32C).
uint32_t Crc32cCombine(uint32_t crc_a, uint32_t crc_b, uint64_t length_b);

}  // namespace rlhf::codec::internal

#endif  // RLHF_COMMON_CODEC_INTERNAL_CRC32C_IMPL_H_
