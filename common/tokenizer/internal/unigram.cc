// SentencePiece unigram segmentation, following google/sentencepiece
// src/unigram_model.cc Model::EncodeOptimized (the default encoder): Viterbi
// over the pieces that start at each character, keeping only the best path that
// ends at each byte position.

#include <algorithm>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/tokenizer/internal/segment.h"
#include "common/tokenizer/internal/utf8.h"
#include "common/tokenizer/internal/vocab.h"

namespace rlhf::tokenizer::internal {
namespace {

// SentencePiece's penalty for an unknown character, below the lowest piece
// score.
constexpr float kUnkPenalty = 10.0f;

// The best path that ends at one byte position.
struct BestPathNode {
  // Id of the last piece.
  int id = -1;
  // Total score of the path.
  float score = 0.0f;
  // Where the last piece starts; -1 while no path ends here.
  int starts_at = -1;
};

// Offers the path (`candidate` score, last piece [start, end) with `id`) to
// `node`. SentencePiece compares in double for pieces (their score expression
// is a double) and stores a float.
void Offer(double candidate, int start, int id, BestPathNode* node) {
  if (node->starts_at == -1 || candidate > node->score) {
    node->score = static_cast<float>(candidate);
    node->starts_at = start;
    node->id = id;
  }
}

// Relaxes every piece that starts at `start`; returns whether one covers
// exactly `char_length`.
bool RelaxPieces(absl::string_view text, int start, int char_length,
                 const Vocab& vocab, std::vector<BestPathNode>* best) {
  const float base = (*best)[start].score;
  const int max_end = static_cast<int>(
      std::min(text.size(), start + vocab.max_segment_piece_bytes()));
  bool has_single_node = false;
  for (int end = start + 1; end <= max_end; ++end) {
    const int length = end - start;
    const int id = vocab.FindSegmentPiece(text.substr(start, length));
    if (id < 0 || vocab.Is(id, PieceType::kUnused)) continue;
    // User-defined pieces get a bonus so that they are always chosen.
    const double score = vocab.Is(id, PieceType::kUserDefined)
                             ? length * vocab.max_normal_score() - 0.1
                             : vocab.score(id);
    Offer(score + base, start, id, &(*best)[end]);
    if (length == char_length) has_single_node = true;
  }
  return has_single_node;
}

}  // namespace

std::vector<Segment> UnigramSegment(absl::string_view text,
                                    const Vocab& vocab) {
  if (text.empty()) return {};
  const int size = static_cast<int>(text.size());
  const float unk_score = vocab.min_normal_score() - kUnkPenalty;
  std::vector<BestPathNode> best(size + 1);
  for (int start = 0; start < size;) {
    const int char_length = std::min(OneCharLen(text[start]), size - start);
    if (!RelaxPieces(text, start, char_length, vocab, &best)) {
      const float candidate = unk_score + best[start].score;
      Offer(candidate, start, vocab.unk_id(), &best[start + char_length]);
    }
    start += char_length;
  }
  std::vector<Segment> out;
  for (int end = size; end > 0 && best[end].starts_at >= 0;
       end = best[end].starts_at) {
    const BestPathNode& node = best[end];
    out.push_back({text.substr(node.starts_at, end - node.starts_at), node.id});
  }
  std::reverse(out.begin(), out.end());
  return out;
}

}  // namespace rlhf::tokenizer::internal
