#include "common/tokenizer/internal/vocab_tokenizer.h"

#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/types/span.h"
#include "common/tokenizer/internal/utf8.h"
#include "common/tokenizer/internal/vocab.h"

namespace rlhf::tokenizer::internal {
namespace {

// Accumulates decoded text piece by piece, following
// SentencePieceProcessor::Decode: runs of byte pieces are buffered and turned
// into UTF-8 (U+FFFD per malformed byte) when a non-byte piece or the end
// arrives; the leading-space rule looks at the text produced so far.
class Decoder {
 public:
  Decoder(const Vocab& vocab, const DecodeOptions& options)
      : vocab_(vocab), options_(options) {}

  void Add(int id) {
    if (vocab_.Is(id, PieceType::kByte)) {
      bytes_.push_back(static_cast<char>(vocab_.ByteValue(id)));
      return;
    }
    FlushBytes();
    if (bos_ws_seen_ || !text_.empty()) is_bos_ws_ = false;
    bos_ws_seen_ = AppendPiece(id);
  }

  std::string Finish() {
    FlushBytes();
    return std::move(text_);
  }

 private:
  // Appends the surface of the non-byte piece `id`; returns whether it consumed
  // a leading "▁".
  bool AppendPiece(int id) {
    if (!vocab_.Contains(id) || vocab_.Is(id, PieceType::kUnknown)) {
      text_ += options_.unk_surface;
      return false;
    }
    if (vocab_.Is(id, PieceType::kControl)) return false;
    absl::string_view piece = vocab_.piece(id);
    bool has_bos_ws = false;
    if (is_bos_ws_ && options_.strip_first_space) {
      has_bos_ws = absl::ConsumePrefix(&piece, kSpaceSymbol);
      if (options_.strip_all_leading_spaces) has_bos_ws = false;
    }
    absl::StrAppend(&text_, absl::StrReplaceAll(piece, {{kSpaceSymbol, " "}}));
    return has_bos_ws;
  }

  void FlushBytes() {
    absl::string_view rest = bytes_;
    while (!rest.empty()) {
      const int length = ValidCharLen(rest);
      if (length == 0) {
        absl::StrAppend(&text_, kReplacementChar);
        rest.remove_prefix(1);
      } else {
        absl::StrAppend(&text_, rest.substr(0, length));
        rest.remove_prefix(length);
      }
    }
    bytes_.clear();
  }

  const Vocab& vocab_;
  const DecodeOptions& options_;
  std::string text_;
  std::string bytes_;         // Pending run of byte pieces.
  bool is_bos_ws_ = true;     // Whether a leading "▁" may still be consumed.
  bool bos_ws_seen_ = false;  // Whether the last piece consumed one.
};

}  // namespace

int ControlPieceId(const Vocab& vocab, absl::string_view piece) {
  const int id = vocab.PieceToId(piece);
  return vocab.Is(id, PieceType::kControl) ? id : -1;
}

VocabTokenizer::VocabTokenizer(Vocab vocab, DecodeOptions decode_options,
                               int bos_id, int eos_id)
    : vocab_(std::move(vocab)),
      decode_options_(std::move(decode_options)),
      bos_id_(bos_id),
      eos_id_(eos_id) {}

std::string VocabTokenizer::Decode(absl::Span<const int> ids) const {
  Decoder decoder(vocab_, decode_options_);
  for (const int id : ids) decoder.Add(id);
  return decoder.Finish();
}

const std::string& VocabTokenizer::IdToPiece(int id) const {
  static const std::string* const kEmpty = new std::string();
  return vocab_.Contains(id) ? vocab_.piece(id) : *kEmpty;
}

}  // namespace rlhf::tokenizer::internal
