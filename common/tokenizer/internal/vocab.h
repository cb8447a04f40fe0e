// The vocabulary shared by every tokenizer implementation: pieces, scores and
// types with SentencePiece's lookup rules (src/model_interface.cc).
#ifndef RLHF_COMMON_TOKENIZER_INTERNAL_VOCAB_H_
#define RLHF_COMMON_TOKENIZER_INTERNAL_VOCAB_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/tokenizer/tokenizer.h"

namespace rlhf::tokenizer::internal {

// An immutable vocabulary. Thread-safe (const after construction).
class Vocab {
 public:
  // Validates `pieces` as SentencePiece does when it loads a model: pieces
  // non-empty and unique (separately among segmentable and reserved pieces),
  // exactly one kUnknown piece, kByte pieces spelled "<0xNN>" and only with
  // `byte_fallback`. Errors are INVALID_ARGUMENT with a message that does not
  // name the source (callers prefix it).
  static absl::StatusOr<Vocab> Create(std::vector<PieceSpec> pieces,
                                      bool byte_fallback);

  Vocab(Vocab&&) = default;
  Vocab& operator=(Vocab&&) = default;

  int size() const { return static_cast<int>(entries_.size()); }
  bool Contains(int id) const { return id >= 0 && id < size(); }

  // REQUIRES: Contains(id).
  const std::string& piece(int id) const { return entries_[id].piece; }
  float score(int id) const { return entries_[id].score; }
  PieceType type(int id) const { return entries_[id].type; }

  // Returns whether `id` is a valid id of type `type`.
  bool Is(int id, PieceType type) const {
    return Contains(id) && entries_[id].type == type;
  }

  int unk_id() const { return unk_id_; }
  bool byte_fallback() const { return byte_fallback_; }

  // Returns the id of `piece`, reserved pieces (control, unknown, byte) first,
  // or unk_id() when it is not in the vocabulary. SentencePiece's PieceToId.
  int PieceToId(absl::string_view piece) const;

  // Returns the id of `piece` if it is a piece segmentation may produce
  // (normal, user-defined or unused), else -1.
  int FindSegmentPiece(absl::string_view piece) const;

  // Returns the id of the byte piece for `byte`, or unk_id() when the
  // vocabulary lacks it.
  int ByteToId(uint8_t byte) const;

  // Returns the byte of a kByte piece. REQUIRES: Is(id, PieceType::kByte).
  uint8_t ByteValue(int id) const {
    return static_cast<uint8_t>(ParseByte(id));
  }

  // The kUserDefined pieces, in id order.
  const std::vector<std::string>& user_defined_pieces() const {
    return user_defined_;
  }

  // The longest segmentable piece, in bytes.
  size_t max_segment_piece_bytes() const { return max_segment_piece_bytes_; }

  // Lowest and highest score of kNormal pieces, starting from FLT_MAX and
  // FLT_MIN as SentencePiece's unigram model does (so the maximum is never
  // below FLT_MIN).
  float min_normal_score() const { return min_normal_score_; }
  float max_normal_score() const { return max_normal_score_; }

 private:
  Vocab() = default;

  // Indexes entry `id`; errors describe why the vocabulary is invalid.
  absl::Status Add(int id);
  absl::Status AddByte(int id);
  int ParseByte(int id) const;

  std::vector<PieceSpec> entries_;
  // Normal, user-defined and unused pieces -> id.
  absl::flat_hash_map<std::string, int> segment_ids_;
  // Control, unknown and byte pieces -> id.
  absl::flat_hash_map<std::string, int> reserved_ids_;
  // Byte -> id of its <0xNN> piece, or unk_id_.
  std::array<int, 256> byte_ids_{};
  std::vector<std::string> user_defined_;
  int unk_id_ = -1;
  bool byte_fallback_ = false;
  size_t max_segment_piece_bytes_ = 0;
  float min_normal_score_ = 0.0f;
  float max_normal_score_ = 0.0f;
};

}  // namespace rlhf::tokenizer::internal

#endif  // RLHF_COMMON_TOKENIZER_INTERNAL_VOCAB_H_
