#include "common/codec/crc32c.h"

#include <array>
#include <cstring>

#include "common/codec/internal/crc32c_impl.h"

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the slicing-by-8 loop loads 8 bytes as a little-endian word");

namespace rlhf::codec {
namespace internal {
namespace {

constexpr uint32_t kPolynomial = 0x82F63B78;  // Castagnoli, bit-reflected.

using Tables = std::array<std::array<uint32_t, 256>, 8>;

// tables[0] is the classic byte-at-a-time table; tables[k][b] is the CRC of byte b followed by
// k zero bytes, so eight lookups advance the state by eight bytes.
constexpr Tables MakeTables() {
  Tables tables{};
  for (uint32_t b = 0; b < 256; ++b) {
    uint32_t crc = b;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1) ? kPolynomial : 0);
    tables[0][b] = crc;
  }
  for (int k = 1; k < 8; ++k) {
    for (int b = 0; b < 256; ++b) {
      const uint32_t prev = tables[k - 1][b];
      tables[k][b] = (prev >> 8) ^ tables[0][prev & 0xFF];
    }
  }
  return tables;
}

constexpr Tables kTables = MakeTables();

inline uint32_t UpdateByte(uint32_t state, uint8_t byte) {
  return (state >> 8) ^ kTables[0][(state ^ byte) & 0xFF];
}

// a * b modulo the polynomial, in the bit-reflected representation (bit 31 is x^0); zlib's
// multmodp.
uint32_t MultModP(uint32_t a, uint32_t b) {
  uint32_t m = 1u << 31, product = 0;
  while (true) {
    if (a & m) {
      product ^= b;
      if ((a & (m - 1)) == 0) break;
    }
    m >>= 1;
    b = (b & 1) ? (b >> 1) ^ kPolynomial : b >> 1;
  }
  return product;
}

// kPowers[k] = x^(2^k) modulo the polynomial.
constexpr int kNumPowers = 64;
std::array<uint32_t, kNumPowers> MakePowers() {
  std::array<uint32_t, kNumPowers> powers{};
  uint32_t p = 1u << 30;  // x^1
  for (int k = 0; k < kNumPowers; ++k) {
    powers[k] = p;
    p = MultModP(p, p);
  }
  return powers;
}

// x^(8 * bytes) modulo the polynomial: the operator that appends `bytes` zero bytes.
uint32_t ZeroBytesOperator(uint64_t bytes) {
  static const std::array<uint32_t, kNumPowers> powers = MakePowers();
  uint32_t p = 1u << 31;  // x^0
  for (int k = 3; bytes != 0; bytes >>= 1, ++k) {
    if (bytes & 1) p = MultModP(powers[k % kNumPowers], p);
  }
  return p;
}

}  // namespace

uint32_t Crc32cCombine(uint32_t crc_a, uint32_t crc_b, uint64_t length_b) {
  return MultModP(ZeroBytesOperator(length_b), crc_a) ^ crc_b;
}

uint32_t Crc32cPortable(uint32_t crc, const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t state = ~crc;
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    const uint32_t lo = static_cast<uint32_t>(word) ^ state;
    const uint32_t hi = static_cast<uint32_t>(word >> 32);
    state = kTables[7][lo & 0xFF] ^ kTables[6][(lo >> 8) & 0xFF] ^ kTables[5][(lo >> 16) & 0xFF] ^
            kTables[4][lo >> 24] ^ kTables[3][hi & 0xFF] ^ kTables[2][(hi >> 8) & 0xFF] ^
            kTables[1][(hi >> 16) & 0xFF] ^ kTables[0][hi >> 24];
  }
  for (; n > 0; ++p, --n) state = UpdateByte(state, *p);
  return ~state;
}

#if defined(__x86_64__)

bool Crc32cHardwareAvailable() {
  static const bool available = __builtin_cpu_supports("sse4.2");
  return available;
}

__attribute__((target("sse4.2"))) uint32_t Crc32cSse42(uint32_t crc, const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint64_t state = ~crc;
  // Single bytes up to an 8-byte boundary, then whole words, then the tail.
  for (; n > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0; ++p, --n) {
    state = _mm_crc32_u8(static_cast<uint32_t>(state), *p);
  }
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    state = _mm_crc32_u64(state, word);
  }
  for (; n > 0; ++p, --n) state = _mm_crc32_u8(static_cast<uint32_t>(state), *p);
  return ~static_cast<uint32_t>(state);
}

__attribute__((target("sse4.2"))) uint32_t Crc32cSse42ThreeWay(uint32_t crc, const void* data,
                                                               size_t n) {
  // The crc32 instruction has a latency of 3 cycles and a throughput of 1 per cycle: three
  // independent streams over the thirds of the buffer keep it busy, and the three CRCs are then
  // joined with Crc32cCombine.
  constexpr size_t kMinimum = 3 * 4096;
  if (n < kMinimum) return Crc32cSse42(crc, data, n);
  const auto* p = static_cast<const uint8_t*>(data);
  const size_t third = (n / 3) & ~size_t{7};
  const uint8_t* a = p;
  const uint8_t* b = p + third;
  const uint8_t* c = p + 2 * third;
  uint64_t sa = ~crc, sb = 0xFFFFFFFFu, sc = 0xFFFFFFFFu;
  for (size_t i = 0; i < third; i += 8) {
    uint64_t wa, wb, wc;
    std::memcpy(&wa, a + i, 8);
    std::memcpy(&wb, b + i, 8);
    std::memcpy(&wc, c + i, 8);
    sa = _mm_crc32_u64(sa, wa);
    sb = _mm_crc32_u64(sb, wb);
    sc = _mm_crc32_u64(sc, wc);
  }
  const size_t rest = n - 3 * third;  // the tail goes with the third stream
  const uint32_t crc_c = Crc32cSse42(~static_cast<uint32_t>(sc), c + third, rest);
  uint32_t out = Crc32cCombine(~static_cast<uint32_t>(sa), ~static_cast<uint32_t>(sb), third);
  return Crc32cCombine(out, crc_c, third + rest);
}

#else  // !defined(__x86_64__)

bool Crc32cHardwareAvailable() { return false; }

uint32_t Crc32cSse42(uint32_t crc, const void* data, size_t n) {
  return Crc32cPortable(crc, data, n);
}

uint32_t Crc32cSse42ThreeWay(uint32_t crc, const void* data, size_t n) {
  return Crc32cPortable(crc, data, n);
}

#endif  // defined(__x86_64__)

}  // namespace internal

uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t n) {
  using Impl = uint32_t (*)(uint32_t, const void*, size_t);
  static const Impl impl = internal::Crc32cHardwareAvailable() ? internal::Crc32cSse42ThreeWay
                                                                : internal::Crc32cPortable;
  return impl(crc, data, n);
}

}  // namespace rlhf::codec
