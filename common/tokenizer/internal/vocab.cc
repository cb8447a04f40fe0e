#include "common/tokenizer/internal/vocab.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status/status_macros.h"
#include "common/tokenizer/internal/utf8.h"

namespace rlhf::tokenizer::internal {
namespace {

bool IsSegmentType(PieceType type) {
  return type == PieceType::kNormal || type == PieceType::kUserDefined ||
         type == PieceType::kUnused;
}

bool IsKnownType(PieceType type) {
  const int t = static_cast<int>(type);
  return t >= static_cast<int>(PieceType::kNormal) &&
         t <= static_cast<int>(PieceType::kByte);
}

// The piece in quotes, non-printable bytes escaped (error messages).
std::string Quoted(absl::string_view piece) {
  return absl::StrCat("\"", absl::CHexEscape(piece), "\"");
}

absl::Status CheckEntry(const PieceSpec& entry, int id) {
  if (entry.piece.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("piece ", id, " is empty"));
  }
  if (!IsKnownType(entry.type)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "piece ", id, " has unknown type ", static_cast<int>(entry.type)));
  }
  if (std::isnan(entry.score)) {
    return absl::InvalidArgumentError(
        absl::StrCat("piece ", id, " has a NaN score"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Vocab> Vocab::Create(std::vector<PieceSpec> pieces,
                                    bool byte_fallback) {
  Vocab vocab;
  vocab.entries_ = std::move(pieces);
  vocab.byte_fallback_ = byte_fallback;
  vocab.min_normal_score_ = FLT_MAX;
  vocab.max_normal_score_ = FLT_MIN;
  vocab.byte_ids_.fill(-1);
  for (int id = 0; id < vocab.size(); ++id) {
    RLHF_RETURN_IF_ERROR(vocab.Add(id));
  }
  if (vocab.unk_id_ < 0) {
    return absl::InvalidArgumentError("no piece has type UNKNOWN");
  }
  for (int& id : vocab.byte_ids_) {
    if (id < 0) id = vocab.unk_id_;
  }
  return vocab;
}

absl::Status Vocab::Add(int id) {
  const PieceSpec& entry = entries_[id];
  RLHF_RETURN_IF_ERROR(CheckEntry(entry, id));
  const bool segment = IsSegmentType(entry.type);
  auto& ids = segment ? segment_ids_ : reserved_ids_;
  if (!ids.emplace(entry.piece, id).second) {
    return absl::InvalidArgumentError(absl::StrCat(
        "piece ", id, " ", Quoted(entry.piece), " is already defined"));
  }
  if (segment) {
    max_segment_piece_bytes_ =
        std::max(max_segment_piece_bytes_, entry.piece.size());
  }
  switch (entry.type) {
    case PieceType::kNormal:
      min_normal_score_ = std::min(min_normal_score_, entry.score);
      max_normal_score_ = std::max(max_normal_score_, entry.score);
      return absl::OkStatus();
    case PieceType::kUserDefined:
      user_defined_.push_back(entry.piece);
      return absl::OkStatus();
    case PieceType::kUnknown:
      if (unk_id_ >= 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "pieces ", unk_id_, " and ", id, " both have type UNKNOWN"));
      }
      unk_id_ = id;
      return absl::OkStatus();
    case PieceType::kByte:
      return AddByte(id);
    default:
      return absl::OkStatus();
  }
}

absl::Status Vocab::AddByte(int id) {
  const std::string& piece = entries_[id].piece;
  if (!byte_fallback_) {
    return absl::InvalidArgumentError(
        absl::StrCat("byte piece ", id, " ", Quoted(piece),
                     " is present although byte_fallback is off"));
  }
  const int byte = ParseByte(id);
  if (byte < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "byte piece ", id, " ", Quoted(piece), " is not of the form <0xNN>"));
  }
  byte_ids_[byte] = id;
  return absl::OkStatus();
}

int Vocab::ParseByte(int id) const {
  return ParseBytePiece(entries_[id].piece);
}

int Vocab::PieceToId(absl::string_view piece) const {
  if (auto it = reserved_ids_.find(piece); it != reserved_ids_.end()) {
    return it->second;
  }
  if (auto it = segment_ids_.find(piece); it != segment_ids_.end()) {
    return it->second;
  }
  return unk_id_;
}

int Vocab::FindSegmentPiece(absl::string_view piece) const {
  auto it = segment_ids_.find(piece);
  return it == segment_ids_.end() ? -1 : it->second;
}

int Vocab::ByteToId(uint8_t byte) const { return byte_ids_[byte]; }

}  // namespace rlhf::tokenizer::internal
