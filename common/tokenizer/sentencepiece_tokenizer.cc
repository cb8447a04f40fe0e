// SentencePiece-compatible tokenizer over an in-memory vocabulary:
// normalization (internal/normalizer), segmentation (internal/bpe.cc,
// internal/unigram.cc), byte fallback and decoding (internal/vocab_tokenizer).

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/tokenizer/internal/normalizer.h"
#include "common/tokenizer/internal/segment.h"
#include "common/tokenizer/internal/vocab.h"
#include "common/tokenizer/internal/vocab_tokenizer.h"
#include "common/tokenizer/tokenizer.h"

namespace rlhf::tokenizer {
namespace {

using internal::DecodeOptions;
using internal::NormalizerOptions;
using internal::Vocab;

NormalizerOptions ToNormalizerOptions(const SentencePieceOptions& options) {
  NormalizerOptions normalizer;
  normalizer.add_dummy_prefix = options.add_dummy_prefix;
  normalizer.remove_extra_whitespaces = options.remove_extra_whitespaces;
  normalizer.escape_whitespaces = options.escape_whitespaces;
  return normalizer;
}

DecodeOptions ToDecodeOptions(const SentencePieceOptions& options) {
  DecodeOptions decode;
  decode.strip_first_space =
      options.add_dummy_prefix || options.remove_extra_whitespaces;
  decode.strip_all_leading_spaces = options.remove_extra_whitespaces;
  decode.unk_surface = options.unk_surface;
  return decode;
}

// Thread-safe: immutable after construction.
class SentencePieceTokenizer final : public internal::VocabTokenizer {
 public:
  SentencePieceTokenizer(Vocab vocab, const SentencePieceOptions& options,
                         int bos_id, int eos_id)
      : VocabTokenizer(std::move(vocab), ToDecodeOptions(options), bos_id,
                       eos_id),
        model_type_(options.model_type),
        normalizer_options_(ToNormalizerOptions(options)),
        matcher_(this->vocab().user_defined_pieces()) {}

  std::vector<int> Encode(std::string_view text) const override {
    const std::string normalized =
        internal::Normalize(absl::string_view(text.data(), text.size()),
                            normalizer_options_, matcher_);
    if (normalized.empty()) return {};
    const std::vector<internal::Segment> segments =
        model_type_ == ModelType::kBpe
            ? internal::BpeSegment(normalized, vocab(), matcher_)
            : internal::UnigramSegment(normalized, vocab());
    return internal::SegmentsToIds(segments, vocab());
  }

 private:
  const ModelType model_type_;
  const NormalizerOptions normalizer_options_;
  const internal::PrefixMatcher matcher_;  // User-defined pieces.
};

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> BuildSentencePieceTokenizer(
    std::vector<PieceSpec> pieces, const SentencePieceOptions& options) {
  if (options.model_type != ModelType::kBpe &&
      options.model_type != ModelType::kUnigram) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown model type ", static_cast<int>(options.model_type)));
  }
  absl::StatusOr<Vocab> vocab =
      Vocab::Create(std::move(pieces), options.byte_fallback);
  if (!vocab.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid vocabulary: ", vocab.status().message()));
  }
  const int bos_id = internal::ControlPieceId(*vocab, options.bos_piece);
  const int eos_id = internal::ControlPieceId(*vocab, options.eos_piece);
  return std::make_unique<SentencePieceTokenizer>(*std::move(vocab), options,
                                                  bos_id, eos_id);
}

}  // namespace rlhf::tokenizer
