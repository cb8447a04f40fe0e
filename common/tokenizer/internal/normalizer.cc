#include "common/tokenizer/internal/normalizer.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "common/tokenizer/internal/utf8.h"

namespace rlhf::tokenizer::internal {
namespace {

// One normalized unit and the number of input bytes it consumed
// (SentencePiece's NormalizePrefix).
struct Unit {
  absl::string_view text;
  size_t consumed;
};

Unit NormalizePrefix(absl::string_view input, const PrefixMatcher& matcher) {
  if (const size_t length = matcher.LongestMatch(input); length > 0) {
    return {input.substr(0, length), length};
  }
  const int length = ValidCharLen(input);
  if (length == 0) {
    return {kReplacementChar, 1};  // Malformed byte: U+FFFD, consume one byte.
  }
  return {input.substr(0, length), static_cast<size_t>(length)};
}

void AppendEscaped(absl::string_view text, bool escape_whitespaces,
                   std::string* out) {
  for (const char c : text) {
    if (escape_whitespaces && c == ' ') {
      absl::StrAppend(out, kSpaceSymbol);
    } else {
      out->push_back(c);
    }
  }
}

}  // namespace

PrefixMatcher::PrefixMatcher(const std::vector<std::string>& symbols) {
  for (const std::string& symbol : symbols) {
    if (symbol.empty()) continue;
    symbols_.insert(symbol);
    max_length_ = std::max(max_length_, symbol.size());
  }
}

size_t PrefixMatcher::LongestMatch(absl::string_view text) const {
  for (size_t length = std::min(max_length_, text.size()); length > 0;
       --length) {
    if (symbols_.contains(text.substr(0, length))) return length;
  }
  return 0;
}

std::string Normalize(absl::string_view input, const NormalizerOptions& options,
                      const PrefixMatcher& matcher) {
  std::string out;
  if (options.remove_extra_whitespaces) {
    while (!input.empty()) {
      const Unit unit = NormalizePrefix(input, matcher);
      if (unit.text != " ") break;
      input.remove_prefix(unit.consumed);
    }
  }
  if (input.empty()) return out;

  const absl::string_view space =
      options.escape_whitespaces ? kSpaceSymbol : " ";
  out.reserve(input.size() * 3);
  if (options.add_dummy_prefix) absl::StrAppend(&out, space);
  bool is_prev_space = options.remove_extra_whitespaces;
  while (!input.empty()) {
    const Unit unit = NormalizePrefix(input, matcher);
    absl::string_view text = unit.text;
    while (is_prev_space && absl::ConsumePrefix(&text, " ")) {
    }
    if (!text.empty()) {
      AppendEscaped(text, options.escape_whitespaces, &out);
      is_prev_space = absl::EndsWith(text, " ");
    }
    input.remove_prefix(unit.consumed);
    if (!options.remove_extra_whitespaces) is_prev_space = false;
  }
  if (options.remove_extra_whitespaces) {
    while (absl::EndsWith(out, space)) out.resize(out.size() - space.size());
  }
  return out;
}

}  // namespace rlhf::tokenizer::internal
