// SentencePiece BPE segmentation, following google/sentencepiece
// src/bpe_model.cc Model::Encode.

#include <algorithm>
#include <cstddef>
#include <queue>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "common/tokenizer/internal/normalizer.h"
#include "common/tokenizer/internal/segment.h"
#include "common/tokenizer/internal/utf8.h"
#include "common/tokenizer/internal/vocab.h"

namespace rlhf::tokenizer::internal {
namespace {

struct Symbol {
  int prev;                 // Index of the previous live symbol, -1 for none.
  int next;                 // Index of the next live symbol, -1 for none.
  bool freeze;              // A user-defined piece: never merged.
  absl::string_view piece;  // Empty once merged into its left neighbour.
};

// A candidate merge of symbols `left` and `right` into a piece of `size` bytes.
struct SymbolPair {
  float score;
  int left;
  int right;
  size_t size;
};

// Max-heap order: higher score first, then the leftmost pair.
struct PairOrder {
  bool operator()(const SymbolPair& a, const SymbolPair& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

// One BPE run over one normalized text. Not thread-safe; a fresh instance per
// Encode().
class BpeRun {
 public:
  BpeRun(absl::string_view normalized, const Vocab& vocab,
         const PrefixMatcher& matcher)
      : vocab_(vocab) {
    Split(normalized, matcher);
  }

  std::vector<Segment> Run() {
    for (int i = 1; i < static_cast<int>(symbols_.size()); ++i) {
      MaybeAddPair(i - 1, i);
    }
    while (!agenda_.empty()) {
      const SymbolPair top = agenda_.top();
      agenda_.pop();
      if (IsStale(top)) continue;
      Merge(top);
    }
    std::vector<Segment> out;
    for (int i = 0; i != -1; i = symbols_[i].next) {
      Resegment(symbols_[i].piece, &out);
    }
    return out;
  }

 private:
  void Split(absl::string_view text, const PrefixMatcher& matcher) {
    symbols_.reserve(text.size());
    while (!text.empty()) {
      size_t length = matcher.LongestMatch(text);
      const bool freeze = length > 0;
      if (!freeze) length = std::min<size_t>(text.size(), OneCharLen(text[0]));
      const int index = static_cast<int>(symbols_.size());
      symbols_.push_back({index - 1, length == text.size() ? -1 : index + 1,
                          freeze, text.substr(0, length)});
      text.remove_prefix(length);
    }
  }

  void MaybeAddPair(int left, int right) {
    if (left == -1 || right == -1 || symbols_[left].freeze ||
        symbols_[right].freeze) {
      return;
    }
    const absl::string_view piece = Joined(left, right);
    const int id = vocab_.FindSegmentPiece(piece);
    if (id < 0) return;
    agenda_.push({vocab_.score(id), left, right, piece.size()});
    if (vocab_.Is(id, PieceType::kUnused)) {
      rev_merge_[piece] = {symbols_[left].piece, symbols_[right].piece};
    }
  }

  // The text spanned by adjacent symbols `left` and `right` (contiguous in the
  // input).
  absl::string_view Joined(int left, int right) const {
    return absl::string_view(
        symbols_[left].piece.data(),
        symbols_[left].piece.size() + symbols_[right].piece.size());
  }

  bool IsStale(const SymbolPair& pair) const {
    const absl::string_view left = symbols_[pair.left].piece;
    const absl::string_view right = symbols_[pair.right].piece;
    return left.empty() || right.empty() ||
           left.size() + right.size() != pair.size;
  }

  void Merge(const SymbolPair& pair) {
    Symbol& left = symbols_[pair.left];
    Symbol& right = symbols_[pair.right];
    left.piece = Joined(pair.left, pair.right);
    left.next = right.next;
    if (right.next >= 0) symbols_[right.next].prev = pair.left;
    right.piece = absl::string_view();
    MaybeAddPair(left.prev, pair.left);
    MaybeAddPair(pair.left, left.next);
  }

  // Emits `piece`, splitting unused pieces back into the pair they were merged
  // from.
  void Resegment(absl::string_view piece, std::vector<Segment>* out) const {
    const int id = vocab_.PieceToId(piece);
    if (!vocab_.Is(id, PieceType::kUnused)) {
      out->push_back({piece, id});
      return;
    }
    const auto it = rev_merge_.find(piece);
    if (it == rev_merge_.end()) {
      out->push_back({piece, id});
      return;
    }
    Resegment(it->second.first, out);
    Resegment(it->second.second, out);
  }

  const Vocab& vocab_;
  std::vector<Symbol> symbols_;
  std::priority_queue<SymbolPair, std::vector<SymbolPair>, PairOrder> agenda_;
  // Merged unused piece -> the two pieces it was made of.
  absl::flat_hash_map<absl::string_view,
                      std::pair<absl::string_view, absl::string_view>>
      rev_merge_;
};

}  // namespace

std::vector<Segment> BpeSegment(absl::string_view normalized,
                                const Vocab& vocab,
                                const PrefixMatcher& matcher) {
  if (normalized.empty()) return {};
  return BpeRun(normalized, vocab, matcher).Run();
}

}  // namespace rlhf::tokenizer::internal
