// Text <-> token-id conversion for the models the RLHF services run: prompts
// are encoded before generation, completions decoded for reward models and
// logs. Pure C++ readers of
//   * SentencePiece `.model` files (BPE and unigram, "identity" normalizer),
//     encoding and decoding exactly as SentencePiece does (sp.encode without
//     BOS/EOS, sp.decode), and
//   * llama2.c `tokenizer.bin` files, encoding as llama2.c run.c encode() does.
// libsentencepiece is deliberately not used: Debian's build embeds protobuf
// 3.14 and aborts in processes that load the system libprotobuf (see
// sentencepiece_model.proto).
#ifndef RLHF_COMMON_TOKENIZER_TOKENIZER_H_
#define RLHF_COMMON_TOKENIZER_TOKENIZER_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace rlhf::tokenizer {

// Converts between UTF-8 text and token ids of one vocabulary.
//
// Thread-safe: an instance is immutable after construction and every method is
// const, so one instance may be shared by any number of threads without
// synchronization.
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Returns the token ids of `text`, without BOS or EOS (prepend bos_id()
  // yourself when the model needs it). Text that looks like a control piece
  // ("<s>") is encoded as ordinary text. Never fails: characters missing from
  // the vocabulary become byte pieces (byte fallback) or unk_id().
  virtual std::vector<int> Encode(std::string_view text) const = 0;

  // Returns the text of `ids` with SentencePiece decode semantics: pieces
  // concatenated, "▁" turned into a space, the leading space of the first piece
  // removed (all leading spaces for models with remove_extra_whitespaces), runs
  // of byte pieces <0xNN> assembled into UTF-8 with each malformed byte turned
  // into U+FFFD, control pieces (<s>, </s>) dropped. unk_id() and ids outside
  // [0, vocab_size()) decode to the model's unknown surface (" ⁇ " by default).
  virtual std::string Decode(absl::Span<const int> ids) const = 0;

  // Returns the piece of `id` as SentencePiece spells it ("▁the", "<0x0A>",
  // "<s>"); the reference stays valid for the tokenizer's lifetime. Returns an
  // empty string when `id` is outside [0, vocab_size()).
  virtual const std::string& IdToPiece(int id) const = 0;

  // Returns the number of pieces; valid ids are [0, vocab_size()).
  virtual int vocab_size() const = 0;

  // Return the id of <s>, </s> and <unk>, or -1 when the vocabulary has none.
  virtual int bos_id() const = 0;
  virtual int eos_id() const = 0;
  virtual int unk_id() const = 0;

 protected:
  Tokenizer() = default;
};

// Loads a SentencePiece `.model` file (a serialized sentencepiece.ModelProto).
// Errors (each message names `path`):
//   NOT_FOUND (or the errno-derived code) when the file cannot be read;
//   INVALID_ARGUMENT "<path>: not a SentencePiece model: ..." for truncated or
//   foreign data, and INVALID_ARGUMENT for what this library does not
//   implement: normalizers other than "identity" (e.g. nmt_nfkc), WORD and CHAR
//   models, treat_whitespace_as_suffix, denormalizers.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadSentencePieceModel(
    const std::string& path);

// Loads a llama2.c `tokenizer.bin` file: int32 max_token_length, then per token
// a float32 score, an int32 byte length and the bytes (little endian); the
// vocabulary size is implied by the file length. Ids 0, 1 and 2 are <unk>, <s>
// and </s>; ids 3..258 must be the byte pieces <0x00>..<0xFF>. Encode() follows
// run.c encode(); Decode() has the SentencePiece semantics described above
// (only the first leading space is removed). Errors: as LoadSentencePieceModel,
// with INVALID_ARGUMENT "<path>: not a llama2.c tokenizer: ..." for truncated
// or inconsistent data.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadLlama2cTokenizer(
    const std::string& path);

// Loads `path` with LoadSentencePieceModel if it ends in ".model" and
// LoadLlama2cTokenizer if it ends in ".bin"; INVALID_ARGUMENT naming `path` for
// any other extension.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(
    const std::string& path);

// -----------------------------------------------------------------------------
// Building a SentencePiece tokenizer in memory (tests, demos that make their
// own vocabulary).

// The role of a piece; the values are sentencepiece.ModelProto's.
enum class PieceType {
  // Ordinary piece, produced by segmentation.
  kNormal = 1,
  // <unk>; exactly one piece must have this type.
  kUnknown = 2,
  // <s>, </s>, ...: never produced by Encode(), decoded to nothing.
  kControl = 3,
  // Always kept as one piece where it occurs in the text.
  kUserDefined = 4,
  // Known but never emitted (BPE splits it back into the pair it came from).
  kUnused = 5,
  // "<0xNN>" byte-fallback piece; requires byte_fallback.
  kByte = 6,
};

// One vocabulary entry; its id is its index in the list.
struct PieceSpec {
  // UTF-8, non-empty; "▁" (U+2581) stands for a space.
  std::string piece;
  // BPE: merge priority (higher merges first). Unigram: log probability.
  float score = 0.0f;
  PieceType type = PieceType::kNormal;
};

// Segmentation algorithm.
enum class ModelType {
  // Merge the adjacent pair whose piece has the highest score, leftmost first.
  kBpe,
  // Viterbi: the segmentation with the highest total score.
  kUnigram,
};

// Model-wide settings; defaults are SentencePiece's except `model_type`.
struct SentencePieceOptions {
  ModelType model_type = ModelType::kBpe;

  // Characters missing from the vocabulary become their UTF-8 bytes' <0xNN>
  // pieces instead of <unk>. The byte pieces must be in the vocabulary with
  // type kByte.
  bool byte_fallback = false;

  // Normalization ("identity" rule: characters are not changed).
  // Prepend a space to non-empty text.
  bool add_dummy_prefix = true;
  // Strip leading and trailing spaces, collapse runs of spaces.
  bool remove_extra_whitespaces = true;
  // Write spaces as "▁" before segmentation.
  bool escape_whitespaces = true;

  // What Decode() writes for <unk>.
  std::string unk_surface = " \xE2\x81\x87 ";
  // Control pieces reported by bos_id() / eos_id() (-1 when absent or not of
  // type kControl).
  std::string bos_piece = "<s>";
  std::string eos_piece = "</s>";
};

// Returns a SentencePiece-compatible tokenizer over `pieces`. INVALID_ARGUMENT
// when the vocabulary is malformed: empty or duplicate pieces, no or several
// kUnknown pieces, a kByte piece that is not "<0xNN>" or present without
// byte_fallback.
absl::StatusOr<std::unique_ptr<Tokenizer>> BuildSentencePieceTokenizer(
    std::vector<PieceSpec> pieces, const SentencePieceOptions& options);

// Writes `pieces` and `options` as a SentencePiece `.model` file (a serialized
// sentencepiece.ModelProto with the "identity" normalizer) that LoadSentencePieceModel, and
// SentencePiece itself, read back as the same tokenizer. The vocabulary is checked as
// BuildSentencePieceTokenizer does. Errors name `path`.
absl::Status WriteSentencePieceModel(const std::vector<PieceSpec>& pieces,
                                     const SentencePieceOptions& options,
                                     const std::string& path);

// A word-level unigram vocabulary for texts made of a closed set of words (the demo world):
// <unk>, <s>, </s>, then every piece the default normalization of `texts` splits into (a word
// with its leading "▁", a run of newlines, a word that follows a newline, a lone "▁"), scored
// so that Viterbi keeps each whole, then every character of the texts as a fallback piece (so
// that no text of these characters is ever <unk>). Deterministic: sorted by first occurrence.
std::vector<PieceSpec> WordVocabulary(const std::vector<std::string>& texts);

}  // namespace rlhf::tokenizer

#endif  // RLHF_COMMON_TOKENIZER_TOKENIZER_H_
