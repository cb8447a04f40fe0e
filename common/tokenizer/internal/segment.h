// SentencePiece's segmentation models (src/bpe_model.cc, src/unigram_model.cc)
// and the step that turns their output into ids
// (SentencePieceProcessor::PopulateSentencePieceText).
#ifndef RLHF_COMMON_TOKENIZER_INTERNAL_SEGMENT_H_
#define RLHF_COMMON_TOKENIZER_INTERNAL_SEGMENT_H_

#include <vector>

#include "absl/strings/string_view.h"
#include "common/tokenizer/internal/normalizer.h"
#include "common/tokenizer/internal/vocab.h"

namespace rlhf::tokenizer::internal {

// A piece of the normalized text and its id (Vocab::PieceToId: unk_id() when
// unknown).
struct Segment {
  absl::string_view piece;
  int id;
};

// Segments `normalized` with BPE: split into characters (user-defined pieces
// found by `matcher` stay whole and are never merged), then repeatedly merge
// the adjacent pair whose concatenation is a vocabulary piece with the highest
// score, leftmost on ties; unused pieces are split back into the pair they were
// merged from. The segments view `normalized`.
std::vector<Segment> BpeSegment(absl::string_view normalized,
                                const Vocab& vocab,
                                const PrefixMatcher& matcher);

// Segments `normalized` with the unigram model: the Viterbi path over all
// vocabulary pieces (score = piece score; user-defined pieces get a bonus;
// characters without a piece cost min_normal_score() - 10 as <unk>). The
// segments view `normalized`.
std::vector<Segment> UnigramSegment(absl::string_view normalized,
                                    const Vocab& vocab);

// Returns the ids of `segments`: unknown segments become the ids of their
// bytes' <0xNN> pieces when the vocabulary has byte_fallback; otherwise runs of
// unknown segments become one unk id.
std::vector<int> SegmentsToIds(const std::vector<Segment>& segments,
                               const Vocab& vocab);

}  // namespace rlhf::tokenizer::internal

#endif  // RLHF_COMMON_TOKENIZER_INTERNAL_SEGMENT_H_
