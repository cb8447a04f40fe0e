// SentencePiece's text normalization for the "identity" rule (src/normalizer.cc
// with an empty character map): characters are kept, malformed UTF-8 bytes
// become U+FFFD, and the whitespace options of NormalizerSpec apply.
#ifndef RLHF_COMMON_TOKENIZER_INTERNAL_NORMALIZER_H_
#define RLHF_COMMON_TOKENIZER_INTERNAL_NORMALIZER_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"

namespace rlhf::tokenizer::internal {

// Finds user-defined pieces at the start of a text (longest match), as
// SentencePiece's PrefixMatcher does. Thread-safe (immutable).
class PrefixMatcher {
 public:
  explicit PrefixMatcher(const std::vector<std::string>& symbols);

  // Returns the byte length of the longest symbol that is a prefix of `text`,
  // or 0 if none is.
  size_t LongestMatch(absl::string_view text) const;

 private:
  absl::flat_hash_set<std::string> symbols_;
  size_t max_length_ = 0;
};

// NormalizerSpec's whitespace options.
struct NormalizerOptions {
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;
};

// Returns `text` normalized as SentencePiece does for the "identity" rule.
// User-defined pieces found by `matcher` are copied unchanged (except for space
// escaping).
std::string Normalize(absl::string_view text, const NormalizerOptions& options,
                      const PrefixMatcher& matcher);

}  // namespace rlhf::tokenizer::internal

#endif  // RLHF_COMMON_TOKENIZER_INTERNAL_NORMALIZER_H_
