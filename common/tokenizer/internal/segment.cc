#include "common/tokenizer/internal/segment.h"

#include <cstdint>
#include <vector>

#include "common/tokenizer/internal/vocab.h"

namespace rlhf::tokenizer::internal {

std::vector<int> SegmentsToIds(const std::vector<Segment>& segments,
                               const Vocab& vocab) {
  std::vector<int> ids;
  ids.reserve(segments.size());
  bool prev_is_unk = false;
  for (const Segment& segment : segments) {
    const bool is_unk = vocab.Is(segment.id, PieceType::kUnknown);
    if (is_unk && vocab.byte_fallback()) {
      for (const char c : segment.piece) {
        ids.push_back(vocab.ByteToId(static_cast<uint8_t>(c)));
      }
    } else if (!(is_unk &&
                 prev_is_unk)) {  // A run of unknown pieces becomes one <unk>.
      ids.push_back(segment.id);
    }
    prev_is_unk = is_unk;
  }
  return ids;
}

}  // namespace rlhf::tokenizer::internal
