// UTF-8 and byte-piece helpers with SentencePiece's exact semantics
// (google/sentencepiece src/util.h): the encoders and the decoder must treat
// malformed input the way SentencePiece does to reproduce its ids and strings.
#ifndef RLHF_COMMON_TOKENIZER_INTERNAL_UTF8_H_
#define RLHF_COMMON_TOKENIZER_INTERNAL_UTF8_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace rlhf::tokenizer::internal {

// U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's escaped space.
inline constexpr absl::string_view kSpaceSymbol = "\xe2\x96\x81";
// U+FFFD REPLACEMENT CHARACTER.
inline constexpr absl::string_view kReplacementChar = "\xef\xbf\xbd";

// Returns the length of the UTF-8 character that starts with `lead`, judged
// from the lead byte alone (1 for ASCII, continuation and invalid bytes).
// SentencePiece's OneCharLen.
int OneCharLen(char lead);

// Returns the byte length of the well-formed UTF-8 character at the start of
// `text`, or 0 when it is malformed (bad lead or continuation byte, overlong
// form, surrogate, > U+10FFFF or truncated). A real U+FFFD counts as
// well-formed. REQUIRES: !text.empty().
int ValidCharLen(absl::string_view text);

// Returns the byte-fallback piece of `byte`: "<0xNN>" with two upper-case hex
// digits.
std::string BytePiece(uint8_t byte);

// Returns the byte that `piece` stands for if it is exactly "<0xNN>"
// (upper-case hex, as BytePiece writes it), or -1.
int ParseBytePiece(absl::string_view piece);

}  // namespace rlhf::tokenizer::internal

#endif  // RLHF_COMMON_TOKENIZER_INTERNAL_UTF8_H_
