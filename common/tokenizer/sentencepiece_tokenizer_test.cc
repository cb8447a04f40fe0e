// BuildSentencePieceTokenizer on tiny in-memory vocabularies: the BPE and
// unigram algorithms, normalization options, byte fallback and vocabulary
// validation.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/tokenizer/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rlhf::tokenizer {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kSpace[] = "\xE2\x96\x81";  // "▁"

// <unk>, <s>, </s> (ids 0..2) followed by `pieces`.
std::vector<PieceSpec> WithSpecials(std::vector<PieceSpec> pieces) {
  std::vector<PieceSpec> all = {{"<unk>", 0.0f, PieceType::kUnknown},
                                {"<s>", 0.0f, PieceType::kControl},
                                {"</s>", 0.0f, PieceType::kControl}};
  for (PieceSpec& piece : pieces) all.push_back(std::move(piece));
  return all;
}

std::unique_ptr<Tokenizer> MustBuild(std::vector<PieceSpec> pieces,
                                     const SentencePieceOptions& options) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer =
      BuildSentencePieceTokenizer(WithSpecials(std::move(pieces)), options);
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return tokenizer.ok() ? *std::move(tokenizer) : nullptr;
}

SentencePieceOptions Bpe() { return SentencePieceOptions(); }

SentencePieceOptions Unigram() {
  SentencePieceOptions options;
  options.model_type = ModelType::kUnigram;
  return options;
}

// ids 3..6: ▁ a b c; 7: ab, 8: bc (tie), 9: ▁ab, 10: ▁a.
std::vector<PieceSpec> TieVocab() {
  return {{kSpace, 0.0f},
          {"a", 0.0f},
          {"b", 0.0f},
          {"c", 0.0f},
          {"ab", -1.0f},
          {"bc", -1.0f},
          {"\xE2\x96\x81"
           "ab",
           -2.0f},
          {"\xE2\x96\x81"
           "a",
           -3.0f}};
}

TEST(BpeTest, MergesHighestScoreLeftmostFirst) {
  const auto tokenizer = MustBuild(TieVocab(), Bpe());
  // ▁ a b c: "ab" and "bc" tie at -1, the leftmost wins; then "▁ab" (-2).
  EXPECT_THAT(tokenizer->Encode("abc"), ElementsAre(9, 6));
  EXPECT_EQ(tokenizer->Decode({9, 6}), "abc");
  EXPECT_THAT(tokenizer->Encode(""), IsEmpty());
}

TEST(BpeTest, OnlyMergesIntoVocabularyPieces) {
  const auto tokenizer = MustBuild(TieVocab(), Bpe());
  // Neither "▁c" nor "ca" is a piece.
  EXPECT_THAT(tokenizer->Encode("ca"), ElementsAre(3, 6, 4));
}

TEST(BpeTest, WhitespaceOptions) {
  SentencePieceOptions keep = Bpe();
  keep.remove_extra_whitespaces = false;
  const auto collapsing = MustBuild(TieVocab(), Bpe());
  const auto keeping = MustBuild(TieVocab(), keep);
  EXPECT_THAT(collapsing->Encode("  a   c  "), ElementsAre(10, 3, 6));
  EXPECT_THAT(collapsing->Encode("   "), IsEmpty());
  EXPECT_THAT(keeping->Encode(" a  c "), ElementsAre(3, 10, 3, 3, 6, 3));
  EXPECT_EQ(keeping->Decode({3, 10, 3, 3, 6, 3}), " a  c ");
  // remove_extra_whitespaces models drop every leading space when decoding.
  EXPECT_EQ(collapsing->Decode({3, 3, 10}), "a");
  EXPECT_EQ(keeping->Decode({3, 3, 10}), "  a");

  SentencePieceOptions no_prefix = keep;
  no_prefix.add_dummy_prefix = false;
  const auto raw = MustBuild(TieVocab(), no_prefix);
  EXPECT_THAT(raw->Encode("ab"), ElementsAre(7));
  EXPECT_EQ(raw->Decode({10}), " a");
}

TEST(BpeTest, UnusedPiecesAreSplitBack) {
  // "ab" is unused: it may be merged on the way to "▁ab" but is never emitted
  // itself.
  std::vector<PieceSpec> vocab = {{kSpace, 0.0f},
                                  {"a", 0.0f},
                                  {"b", 0.0f},
                                  {"ab", -1.0f, PieceType::kUnused}};
  EXPECT_THAT(MustBuild(vocab, Bpe())->Encode("ab"), ElementsAre(3, 4, 5));
  vocab.push_back(
      {"\xE2\x96\x81"
       "ab",
       -2.0f});
  EXPECT_THAT(MustBuild(vocab, Bpe())->Encode("ab"), ElementsAre(7));
}

TEST(BpeTest, UserDefinedPiecesStayWhole) {
  std::vector<PieceSpec> vocab = TieVocab();
  vocab.push_back({"<b>", 0.0f, PieceType::kUserDefined});  // id 11
  const auto tokenizer = MustBuild(vocab, Bpe());
  EXPECT_THAT(tokenizer->Encode("a<b>bc"), ElementsAre(10, 11, 8));
  EXPECT_EQ(tokenizer->Decode({10, 11, 8}), "a<b>bc");
}

TEST(BpeTest, UnknownCharactersWithoutByteFallbackBecomeOneUnk) {
  const auto tokenizer = MustBuild(TieVocab(), Bpe());
  EXPECT_THAT(tokenizer->Encode("a\xC3\xA9\xC3\xA9"
                                "c"),
              ElementsAre(10, 0, 6));
  EXPECT_EQ(tokenizer->Decode({10, 0, 6}), "a \xE2\x81\x87 c");
}

TEST(BpeTest, ByteFallback) {
  std::vector<PieceSpec> vocab = TieVocab();
  vocab.push_back({"<0xC3>", 0.0f, PieceType::kByte});  // id 11
  vocab.push_back({"<0xA9>", 0.0f, PieceType::kByte});  // id 12
  SentencePieceOptions options = Bpe();
  options.byte_fallback = true;
  const auto tokenizer = MustBuild(vocab, options);
  EXPECT_THAT(tokenizer->Encode("a\xC3\xA9"), ElementsAre(10, 11, 12));
  EXPECT_EQ(tokenizer->Decode({10, 11, 12}), "a\xC3\xA9");
  // A byte without a piece falls back to <unk>.
  EXPECT_THAT(tokenizer->Encode("\xC3\xA8"), ElementsAre(3, 11, 0));
  // A lone lead byte decodes to U+FFFD; text precedes the "▁", so it stays a
  // space.
  EXPECT_EQ(tokenizer->Decode({11, 3, 4}), "\xEF\xBF\xBD a");
}

// Viterbi picks the best total score, which greedy BPE merging would not find.
std::vector<PieceSpec> UnigramVocab() {
  return {{kSpace, -2.0f},  // 3
          {"a", -3.0f},     // 4
          {"b", -3.0f},     // 5
          {"ab", -4.0f},    // 6
          {"\xE2\x96\x81"
           "a",
           -2.5f},  // 7
          {"\xE2\x96\x81"
           "ab",
           -7.0f},                                 // 8
          {"xy", 0.0f, PieceType::kUserDefined}};  // 9
}

TEST(UnigramTest, ViterbiFindsTheBestSegmentation) {
  const auto tokenizer = MustBuild(UnigramVocab(), Unigram());
  // ▁a+b = -5.5 beats ▁+ab = -6, ▁ab = -7 and ▁+a+b = -8.
  EXPECT_THAT(tokenizer->Encode("ab"), ElementsAre(7, 5));
  // ▁a+b+ab = -9.5 beats ▁+ab+ab = -10 and ▁ab+ab = -11.
  EXPECT_THAT(tokenizer->Encode("abab"), ElementsAre(7, 5, 6));
  EXPECT_EQ(tokenizer->Decode({7, 5, 6}), "abab");
  EXPECT_THAT(tokenizer->Encode(""), IsEmpty());
}

TEST(UnigramTest, UnknownAndUserDefinedPieces) {
  const auto tokenizer = MustBuild(UnigramVocab(), Unigram());
  EXPECT_THAT(tokenizer->Encode("azzb"),
              ElementsAre(7, 0, 5));  // One <unk> for "zz".
  EXPECT_THAT(tokenizer->Encode("axyb"), ElementsAre(7, 9, 5));

  std::vector<PieceSpec> vocab = UnigramVocab();
  vocab.push_back({"<0x7A>", 0.0f, PieceType::kByte});  // id 10, "z"
  SentencePieceOptions options = Unigram();
  options.byte_fallback = true;
  const auto fallback = MustBuild(vocab, options);
  EXPECT_THAT(fallback->Encode("azzb"), ElementsAre(7, 10, 10, 5));
  EXPECT_EQ(fallback->Decode({7, 10, 10, 5}), "azzb");
}

TEST(BuildTest, SpecialIds) {
  const auto tokenizer = MustBuild(TieVocab(), Bpe());
  EXPECT_EQ(tokenizer->vocab_size(), 11);
  EXPECT_EQ(tokenizer->unk_id(), 0);
  EXPECT_EQ(tokenizer->bos_id(), 1);
  EXPECT_EQ(tokenizer->eos_id(), 2);
  EXPECT_EQ(tokenizer->IdToPiece(9),
            "\xE2\x96\x81"
            "ab");
  EXPECT_EQ(tokenizer->Decode({1, 9, 2}), "ab");

  SentencePieceOptions options = Bpe();
  options.bos_piece = "<bos>";
  EXPECT_EQ(MustBuild(TieVocab(), options)->bos_id(), -1);
}

void ExpectInvalid(std::vector<PieceSpec> pieces,
                   const SentencePieceOptions& options,
                   const std::string& message) {
  const absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer =
      BuildSentencePieceTokenizer(std::move(pieces), options);
  ASSERT_FALSE(tokenizer.ok());
  EXPECT_EQ(tokenizer.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(tokenizer.status().message(), HasSubstr(message));
}

TEST(BuildTest, RejectsMalformedVocabularies) {
  ExpectInvalid({{"a", 0.0f}}, Bpe(), "no piece has type UNKNOWN");
  ExpectInvalid(WithSpecials({{"a", 0.0f}, {"a", -1.0f}}), Bpe(),
                "\"a\" is already defined");
  ExpectInvalid(WithSpecials({{"", 0.0f}}), Bpe(), "piece 3 is empty");
  ExpectInvalid(WithSpecials({{"<unk2>", 0.0f, PieceType::kUnknown}}), Bpe(),
                "both have type UNKNOWN");
  ExpectInvalid(WithSpecials({{"<0x41>", 0.0f, PieceType::kByte}}), Bpe(),
                "byte_fallback");
  SentencePieceOptions fallback = Bpe();
  fallback.byte_fallback = true;
  ExpectInvalid(WithSpecials({{"<0x4g>", 0.0f, PieceType::kByte}}), fallback,
                "<0xNN>");
  ExpectInvalid(WithSpecials({{"a", 0.0f, static_cast<PieceType>(9)}}), Bpe(),
                "unknown type 9");
}

}  // namespace
}  // namespace rlhf::tokenizer
