#include "common/codec/crc32c.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>

#include "common/codec/internal/crc32c_impl.h"

namespace rlhf::codec {
namespace {

using internal::Crc32cCombine;
using internal::Crc32cHardwareAvailable;
using internal::Crc32cPortable;
using internal::Crc32cSse42;
using internal::Crc32cSse42ThreeWay;

struct Vector {
  std::string data;
  uint32_t crc;
};

std::vector<Vector> KnownVectors() {
  std::string ascending(32, '\0');
  for (int i = 0; i < 32; ++i) ascending[i] = static_cast<char>(i);
  std::string descending(32, '\0');
  for (int i = 0; i < 32; ++i) descending[i] = static_cast<char>(31 - i);
  return {
      {"", 0},
      {"123456789", 0xE3069283},
      // RFC 3720, appendix B.4.
      {std::string(32, '\x00'), 0x8A9136AA},
      {std::string(32, '\xFF'), 0x62A8AB43},
      {ascending, 0x46DD794E},
      {descending, 0x113FDB5C},
  };
}

TEST(Crc32cTest, KnownVectors) {
  for (const Vector& v : KnownVectors()) {
    SCOPED_TRACE(v.data.size());
    EXPECT_EQ(Crc32c(v.data), v.crc);
    EXPECT_EQ(Crc32cPortable(0, v.data.data(), v.data.size()), v.crc);
    if (Crc32cHardwareAvailable()) {
      EXPECT_EQ(Crc32cSse42(0, v.data.data(), v.data.size()), v.crc);
    }
  }
}

TEST(Crc32cTest, ExtendEqualsWhole) {
  const std::string data = "The quick brown fox jumps over the lazy dog, twice over.";
  for (size_t split = 0; split <= data.size(); ++split) {
    const uint32_t head = Crc32c(absl::string_view(data).substr(0, split));
    EXPECT_EQ(Crc32cExtend(head, data.data() + split, data.size() - split), Crc32c(data));
  }
}

TEST(Crc32cTest, DetectsSingleBitFlip) {
  std::string data(1000, 'a');
  const uint32_t crc = Crc32c(data);
  data[500] ^= 0x01;
  EXPECT_NE(Crc32c(data), crc);
}

TEST(Crc32cTest, HardwareAndPortableAgreeOnRandomBuffers) {
  if (!Crc32cHardwareAvailable()) GTEST_SKIP() << "no SSE4.2 on this CPU";
  std::mt19937_64 rng(42);
  std::string buffer(5000, '\0');
  for (char& c : buffer) c = static_cast<char>(rng());
  for (int trial = 0; trial < 2000; ++trial) {
    // Random start (unaligned too), random length, random initial CRC.
    const size_t start = rng() % 64;
    const size_t length = rng() % (buffer.size() - start);
    const uint32_t init = static_cast<uint32_t>(rng());
    const char* p = buffer.data() + start;
    ASSERT_EQ(Crc32cSse42(init, p, length), Crc32cPortable(init, p, length))
        << "start " << start << " length " << length;
  }
}

TEST(Crc32cTest, ThreeWayAndCombineAgreeWithPortableOnLargeBuffers) {
  std::mt19937_64 rng(7);
  std::string buffer(200000, '\0');
  for (char& c : buffer) c = static_cast<char>(rng());
  for (int trial = 0; trial < 200; ++trial) {
    const size_t start = rng() % 64;
    const size_t length = rng() % (buffer.size() - start);
    const uint32_t init = static_cast<uint32_t>(rng());
    const char* p = buffer.data() + start;
    const uint32_t expected = Crc32cPortable(init, p, length);
    ASSERT_EQ(Crc32cSse42ThreeWay(init, p, length), expected) << "length " << length;
    const size_t split = length == 0 ? 0 : rng() % length;
    ASSERT_EQ(Crc32cCombine(Crc32cPortable(init, p, split),
                            Crc32cPortable(0, p + split, length - split), length - split),
              expected)
        << "split " << split << " of " << length;
  }
}

}  // namespace
}  // namespace rlhf::codec
