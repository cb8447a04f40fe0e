#include "common/tokenizer/internal/utf8.h"

#include <cstdint>
#include <string>

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace rlhf::tokenizer::internal {
namespace {

bool IsTrailByte(char c) { return (static_cast<uint8_t>(c) & 0xC0) == 0x80; }

bool IsValidCodepoint(uint32_t c) {
  return c < 0xD800 || (c >= 0xE000 && c <= 0x10FFFF);
}

uint32_t Bits(char c, uint32_t mask) { return static_cast<uint8_t>(c) & mask; }

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

int OneCharLen(char lead) {
  static constexpr char kLengths[] = "\1\1\1\1\1\1\1\1\1\1\1\1\2\2\3\4";
  return kLengths[static_cast<uint8_t>(lead) >> 4];
}

// Mirrors sentencepiece::string_util::DecodeUTF8 followed by IsValidDecodeUTF8.
int ValidCharLen(absl::string_view s) {
  const size_t len = s.size();
  const uint8_t lead = static_cast<uint8_t>(s[0]);
  if (lead < 0x80) return 1;
  if (len >= 2 && (lead & 0xE0) == 0xC0) {
    const uint32_t cp = (Bits(s[0], 0x1F) << 6) | Bits(s[1], 0x3F);
    if (IsTrailByte(s[1]) && cp >= 0x80 && IsValidCodepoint(cp)) return 2;
  } else if (len >= 3 && (lead & 0xF0) == 0xE0) {
    const uint32_t cp =
        (Bits(s[0], 0x0F) << 12) | (Bits(s[1], 0x3F) << 6) | Bits(s[2], 0x3F);
    if (IsTrailByte(s[1]) && IsTrailByte(s[2]) && cp >= 0x800 &&
        IsValidCodepoint(cp)) {
      return 3;
    }
  } else if (len >= 4 && (lead & 0xF8) == 0xF0) {
    const uint32_t cp = (Bits(s[0], 0x07) << 18) | (Bits(s[1], 0x3F) << 12) |
                        (Bits(s[2], 0x3F) << 6) | Bits(s[3], 0x3F);
    if (IsTrailByte(s[1]) && IsTrailByte(s[2]) && IsTrailByte(s[3]) &&
        cp >= 0x10000 && IsValidCodepoint(cp)) {
      return 4;
    }
  }
  return 0;
}

std::string BytePiece(uint8_t byte) {
  return absl::StrFormat("<0x%02X>", byte);
}

int ParseBytePiece(absl::string_view piece) {
  if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>') {
    return -1;
  }
  const int hi = HexDigit(piece[3]);
  const int lo = HexDigit(piece[4]);
  if (hi < 0 || lo < 0) return -1;
  return hi * 16 + lo;
}

}  // namespace rlhf::tokenizer::internal
