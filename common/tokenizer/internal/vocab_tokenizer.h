// The parts of a Tokenizer that depend only on the vocabulary: decoding
// (SentencePiece's SentencePieceProcessor::Decode), pieces and special ids.
// Encoders derive from it.
#ifndef RLHF_COMMON_TOKENIZER_INTERNAL_VOCAB_TOKENIZER_H_
#define RLHF_COMMON_TOKENIZER_INTERNAL_VOCAB_TOKENIZER_H_

#include <string>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/tokenizer/internal/vocab.h"
#include "common/tokenizer/tokenizer.h"

namespace rlhf::tokenizer::internal {

// How Decode() treats leading spaces and <unk>.
struct DecodeOptions {
  // Drop the "▁" that starts the first visible piece (SentencePiece does so
  // when the model has add_dummy_prefix or remove_extra_whitespaces).
  bool strip_first_space = true;
  // Drop every leading "▁" (remove_extra_whitespaces).
  bool strip_all_leading_spaces = false;
  // Text of <unk> and of out-of-range ids.
  std::string unk_surface = " \xE2\x81\x87 ";
};

// Returns the id of the control piece `piece`, or -1 when `vocab` has no such
// control piece.
int ControlPieceId(const Vocab& vocab, absl::string_view piece);

// A Tokenizer whose Decode/IdToPiece/ids come from a Vocab. Thread-safe
// (immutable).
class VocabTokenizer : public Tokenizer {
 public:
  std::string Decode(absl::Span<const int> ids) const override;
  const std::string& IdToPiece(int id) const override;
  int vocab_size() const override { return vocab_.size(); }
  int bos_id() const override { return bos_id_; }
  int eos_id() const override { return eos_id_; }
  int unk_id() const override { return vocab_.unk_id(); }

 protected:
  VocabTokenizer(Vocab vocab, DecodeOptions decode_options, int bos_id,
                 int eos_id);

  const Vocab& vocab() const { return vocab_; }

 private:
  const Vocab vocab_;
  const DecodeOptions decode_options_;
  const int bos_id_;
  const int eos_id_;
};

}  // namespace rlhf::tokenizer::internal

#endif  // RLHF_COMMON_TOKENIZER_INTERNAL_VOCAB_TOKENIZER_H_
