// LoadLlama2cTokenizer: llama2.c `tokenizer.bin` files (written by llama2.c
// tokenizer.py export()) and the encoder of llama2.c run.c encode().

#include <cstdint>
#include <cstring>
#include <memory>
#include <queue>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"
#include "common/status/status_macros.h"
#include "common/tokenizer/internal/file.h"
#include "common/tokenizer/internal/utf8.h"
#include "common/tokenizer/internal/vocab.h"
#include "common/tokenizer/internal/vocab_tokenizer.h"
#include "common/tokenizer/tokenizer.h"

namespace rlhf::tokenizer {
namespace {

using internal::Vocab;

// llama2.c's fixed layout: <unk>, <s>, </s>, then the 256 byte pieces
// (id = byte + 3).
constexpr int kUnkId = 0;
constexpr int kBosId = 1;
constexpr int kEosId = 2;
constexpr int kFirstByteId = 3;
constexpr int kMinVocabSize = kFirstByteId + 256;
// run.c merges a pair only if its score beats this initial "best" score.
constexpr float kMinMergeScore = -1e10f;

// One vocabulary entry as stored in the file (spaces are ' ', <s> is
// "\n<s>\n").
struct RawToken {
  std::string text;
  float score;
};

// Stored token text -> id.
using TokenIds = absl::flat_hash_map<std::string, int>;

absl::Status NotLlama2c(const std::string& path, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat(path, ": not a llama2.c tokenizer: ", why));
}

// Reads little-endian values from a byte string. REQUIRES: the caller checks
// remaining() before each read.
class Reader {
 public:
  explicit Reader(absl::string_view data) : data_(data) {}

  size_t offset() const { return offset_; }
  size_t remaining() const { return data_.size() - offset_; }

  uint32_t U32() {
    uint32_t value = 0;
    for (int i = 3; i >= 0; --i) {
      value = (value << 8) | static_cast<uint8_t>(data_[offset_ + i]);
    }
    offset_ += 4;
    return value;
  }
  int32_t I32() { return static_cast<int32_t>(U32()); }
  float F32() {
    const uint32_t bits = U32();
    float value;
    std::memcpy(&value, &bits, sizeof(value));
    return value;
  }
  std::string Bytes(size_t n) {
    std::string bytes(data_.substr(offset_, n));
    offset_ += n;
    return bytes;
  }

 private:
  absl::string_view data_;
  size_t offset_ = 0;
};

// Reads one token record; `max_length` is the header's max_token_length.
absl::StatusOr<RawToken> ReadToken(Reader* reader, int id, int32_t max_length,
                                   const std::string& path) {
  const size_t offset = reader->offset();
  if (reader->remaining() < 8) {
    return NotLlama2c(path, absl::StrCat("truncated in the header of token ",
                                         id, " at offset ", offset));
  }
  const float score = reader->F32();
  const int32_t length = reader->I32();
  if (length < 0 || length > max_length) {
    return NotLlama2c(
        path, absl::StrCat(
                  "token ", id, " at offset ", offset, " has length ", length,
                  ", outside [0, max_token_length = ", max_length, "]"));
  }
  if (reader->remaining() < static_cast<size_t>(length)) {
    return NotLlama2c(
        path, absl::StrCat("token ", id, " at offset ", offset,
                           " is truncated: ", length, " bytes announced, ",
                           reader->remaining(), " left"));
  }
  return RawToken{reader->Bytes(length), score};
}

absl::StatusOr<std::vector<RawToken>> ParseTokenizerBin(
    absl::string_view data, const std::string& path) {
  Reader reader(data);
  if (reader.remaining() < 4) {
    return NotLlama2c(path, "shorter than the 4-byte header");
  }
  const int32_t max_length = reader.I32();
  if (max_length <= 0) {
    return NotLlama2c(path, absl::StrCat("max_token_length is ", max_length));
  }
  std::vector<RawToken> tokens;
  while (reader.remaining() > 0) {
    RLHF_ASSIGN_OR_RETURN(
        RawToken token,
        ReadToken(&reader, static_cast<int>(tokens.size()), max_length, path));
    tokens.push_back(std::move(token));
  }
  if (tokens.size() < kMinVocabSize) {
    return NotLlama2c(
        path,
        absl::StrCat("has ", tokens.size(), " tokens, fewer than the ",
                     kMinVocabSize, " of <unk>, <s>, </s> and 256 bytes"));
  }
  return tokens;
}

// Returns the SentencePiece spelling of a stored token: "<s>" for "\n<s>\n",
// "▁" for ' '.
std::string ToSentencePiece(int id, absl::string_view text) {
  if ((id == kBosId || id == kEosId) && text.size() > 2 &&
      text.front() == '\n' && text.back() == '\n') {
    text = text.substr(1, text.size() - 2);
  }
  return absl::StrReplaceAll(text, {{" ", internal::kSpaceSymbol}});
}

PieceType TypeOf(int id) {
  if (id == kUnkId) return PieceType::kUnknown;
  if (id == kBosId || id == kEosId) return PieceType::kControl;
  if (id < kMinVocabSize) return PieceType::kByte;
  return PieceType::kNormal;
}

absl::StatusOr<Vocab> MakeVocab(const std::vector<RawToken>& tokens,
                                const std::string& path) {
  std::vector<PieceSpec> pieces;
  pieces.reserve(tokens.size());
  for (int id = 0; id < static_cast<int>(tokens.size()); ++id) {
    const PieceType type = TypeOf(id);
    if (type == PieceType::kByte &&
        internal::ParseBytePiece(tokens[id].text) != id - kFirstByteId) {
      return NotLlama2c(
          path, absl::StrCat("token ", id, " is \"",
                             absl::CHexEscape(tokens[id].text), "\", not ",
                             internal::BytePiece(id - kFirstByteId)));
    }
    pieces.push_back(
        {ToSentencePiece(id, tokens[id].text), tokens[id].score, type});
  }
  absl::StatusOr<Vocab> vocab =
      Vocab::Create(std::move(pieces), /*byte_fallback=*/true);
  if (!vocab.ok()) return NotLlama2c(path, vocab.status().message());
  return vocab;
}

// run.c's merge loop: repeatedly merge the adjacent pair whose concatenated
// token texts form the token with the highest score (leftmost on ties). This
// finds the same merges with a max-heap of candidate pairs instead of
// rescanning the sequence after every merge: O(n log n) rather than O(n^2).
// Not thread-safe; one instance per Encode().
class RunCMerge {
 public:
  RunCMerge(const std::vector<RawToken>& tokens, const TokenIds& ids)
      : tokens_(tokens), ids_(ids) {}

  std::vector<int> Run(const std::vector<int>& ids) {
    const int n = static_cast<int>(ids.size());
    symbols_.resize(n);
    for (int i = 0; i < n; ++i) {
      symbols_[i] = {ids[i], i - 1, i + 1 < n ? i + 1 : -1, 0};
    }
    for (int i = 0; i + 1 < n; ++i) MaybeAdd(i, i + 1);
    while (!agenda_.empty()) {
      const Candidate top = agenda_.top();
      agenda_.pop();
      if (symbols_[top.left].version == top.left_version &&
          symbols_[top.right].version == top.right_version) {
        Merge(top);
      }
    }
    std::vector<int> out;
    for (int i = 0; i >= 0 && i < n; i = symbols_[i].next) {
      out.push_back(symbols_[i].id);
    }
    return out;
  }

 private:
  struct Symbol {
    int id;
    int prev;  // -1 for none.
    int next;  // -1 for none.
    // Bumped whenever `id` changes; -1 once merged into its left neighbour.
    int version;
  };

  // Merging symbols `left` and `right` (at the given versions) into
  // `merged_id`.
  struct Candidate {
    float score;
    int left;
    int right;
    int merged_id;
    int left_version;
    int right_version;

    // Max-heap order: higher score first, then the leftmost pair.
    bool operator<(const Candidate& o) const {
      return score < o.score || (score == o.score && left > o.left);
    }
  };

  void MaybeAdd(int left, int right) {
    if (left < 0 || right < 0) return;
    joined_ = tokens_[symbols_[left].id].text;
    joined_ += tokens_[symbols_[right].id].text;
    const auto it = ids_.find(joined_);
    if (it == ids_.end()) return;
    const int id = it->second;
    // NaN scores never win in run.c either.
    if (!(tokens_[id].score > kMinMergeScore)) return;
    agenda_.push({tokens_[id].score, left, right, id, symbols_[left].version,
                  symbols_[right].version});
  }

  void Merge(const Candidate& pair) {
    Symbol& left = symbols_[pair.left];
    Symbol& right = symbols_[pair.right];
    left.id = pair.merged_id;
    ++left.version;
    right.version = -1;
    left.next = right.next;
    if (right.next >= 0) symbols_[right.next].prev = pair.left;
    MaybeAdd(left.prev, pair.left);
    MaybeAdd(pair.left, left.next);
  }

  const std::vector<RawToken>& tokens_;
  const TokenIds& ids_;
  std::vector<Symbol> symbols_;
  std::priority_queue<Candidate> agenda_;
  std::string joined_;  // Scratch buffer for concatenated token texts.
};

// Encodes like llama2.c run.c encode(). Thread-safe: immutable after
// construction.
class Llama2cTokenizer final : public internal::VocabTokenizer {
 public:
  Llama2cTokenizer(Vocab vocab, std::vector<RawToken> tokens)
      : VocabTokenizer(std::move(vocab), internal::DecodeOptions(), kBosId,
                       kEosId),
        tokens_(std::move(tokens)) {
    // The lowest id wins on duplicate texts.
    for (int id = 0; id < static_cast<int>(tokens_.size()); ++id) {
      ids_.emplace(tokens_[id].text, id);
    }
  }

  std::vector<int> Encode(std::string_view text) const override;

 private:
  // Returns the id of the stored token `text`, or -1.
  int Lookup(absl::string_view text) const {
    const auto it = ids_.find(text);
    return it == ids_.end() ? -1 : it->second;
  }

  void AppendCodePoint(absl::string_view code_point,
                       std::vector<int>* ids) const;
  // Applies run.c's pair merges to the initial ids.
  std::vector<int> MergePairs(const std::vector<int>& ids) const;

  const std::vector<RawToken> tokens_;
  // Stored token text -> id; not modified after the constructor.
  TokenIds ids_;
};

// Appends the id of `code_point`, or the ids of its bytes (byte + 3) when it
// has none.
void Llama2cTokenizer::AppendCodePoint(absl::string_view code_point,
                                       std::vector<int>* ids) const {
  const int id = Lookup(code_point);
  if (id >= 0) {
    ids->push_back(id);
    return;
  }
  for (const char c : code_point) {
    ids->push_back(static_cast<uint8_t>(c) + kFirstByteId);
  }
}

std::vector<int> Llama2cTokenizer::Encode(std::string_view std_text) const {
  const absl::string_view text(std_text.data(), std_text.size());
  std::vector<int> ids;
  if (text.empty()) return ids;
  AppendCodePoint(" ", &ids);  // The dummy prefix.
  // Split into code points as run.c does: every byte that is not a
  // continuation byte starts one, and one holds at most 4 bytes.
  const auto is_continuation = [](char c) {
    return (static_cast<uint8_t>(c) & 0xC0) == 0x80;
  };
  size_t begin = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (!is_continuation(text[i])) begin = i;
    const bool more = i + 1 < text.size() && is_continuation(text[i + 1]);
    if (more && i + 1 - begin < 4) continue;
    AppendCodePoint(text.substr(begin, i + 1 - begin), &ids);
    begin = i + 1;
  }
  return MergePairs(ids);
}

std::vector<int> Llama2cTokenizer::MergePairs(
    const std::vector<int>& ids) const {
  return RunCMerge(tokens_, ids_).Run(ids);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadLlama2cTokenizer(
    const std::string& path) {
  RLHF_ASSIGN_OR_RETURN(const std::string data,
                        internal::ReadFileToString(path));
  RLHF_ASSIGN_OR_RETURN(std::vector<RawToken> tokens,
                        ParseTokenizerBin(data, path));
  RLHF_ASSIGN_OR_RETURN(Vocab vocab, MakeVocab(tokens, path));
  return std::make_unique<Llama2cTokenizer>(std::move(vocab),
                                            std::move(tokens));
}

}  // namespace rlhf::tokenizer
