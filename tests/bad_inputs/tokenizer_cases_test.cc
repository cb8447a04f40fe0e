// Bad tokenizer files: llama2.c tokenizer.bin and SentencePiece .model, each built here from a
// valid one and broken in one place (truncated, bad pieces, bad scores, unsupported settings).
#include <cmath>
#include <limits>

#include "common/tokenizer/sentencepiece_model.pb.h"
#include "common/tokenizer/tokenizer.h"
#include "tests/bad_inputs/catalogue.h"

namespace rlhf::bad_inputs {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// One tokenizer.bin token: f32 score, i32 length, the bytes.
std::string Token(const std::string& text, float score = 0.0f) {
  return Bytes<float>(score) + Bytes<int32_t>(static_cast<int32_t>(text.size())) + text;
}

// A valid llama2.c tokenizer.bin: <unk>, <s>, </s>, the 256 byte pieces and `extra` pieces.
// `edit` may replace the token texts or scores before they are written.
std::string TokenizerBin(const std::function<void(std::vector<std::pair<std::string, float>>*)>&
                             edit = {}) {
  std::vector<std::pair<std::string, float>> tokens = {{"<unk>", 0}, {"\n<s>\n", 0},
                                                       {"\n</s>\n", 0}};
  for (int b = 0; b < 256; ++b) {
    char piece[8];
    std::snprintf(piece, sizeof(piece), "<0x%02X>", b);
    tokens.emplace_back(piece, 0.0f);
  }
  for (const char* extra : {" a", "b", " ab"}) tokens.emplace_back(extra, -1.0f);
  if (edit) edit(&tokens);
  std::string out = Bytes<int32_t>(8);
  for (const auto& [text, score] : tokens) out += Token(text, score);
  return out;
}

using SpmModel = tokenizer::spm::ModelProto;

// A valid BPE .model: <unk>, <s>, </s>, "▁a", "b"; then `edit`.
std::string SpmModelBytes(const std::function<void(SpmModel*)>& edit = {}) {
  SpmModel m;
  auto add = [&m](const std::string& piece, float score, SpmModel::SentencePiece::Type type) {
    auto* p = m.add_pieces();
    p->set_piece(piece);
    p->set_score(score);
    p->set_type(type);
  };
  add("<unk>", 0, SpmModel::SentencePiece::UNKNOWN);
  add("<s>", 0, SpmModel::SentencePiece::CONTROL);
  add("</s>", 0, SpmModel::SentencePiece::CONTROL);
  add("\xE2\x96\x81" "a", -1, SpmModel::SentencePiece::NORMAL);
  add("b", -2, SpmModel::SentencePiece::NORMAL);
  m.mutable_trainer_spec()->set_model_type(tokenizer::spm::TrainerSpec::BPE);
  m.mutable_normalizer_spec()->set_name("identity");
  if (edit) edit(&m);
  return m.SerializeAsString();
}

using TokenizerCase = Case<TempDir>;

TokenizerCase BadBin(std::string id, std::string input, std::string needle,
                     std::function<std::string()> bytes) {
  return {std::move(id), std::move(input), "INVALID_ARGUMENT", std::move(needle),
          [bytes](TempDir& dir) {
            return FromStatus(
                tokenizer::LoadLlama2cTokenizer(dir.Write("tokenizer.bin", bytes())).status());
          }};
}
TokenizerCase BadSpm(std::string id, std::string input, std::string needle,
                     std::function<std::string()> bytes) {
  return {std::move(id), std::move(input), "INVALID_ARGUMENT", std::move(needle),
          [bytes](TempDir& dir) {
            return FromStatus(
                tokenizer::LoadSentencePieceModel(dir.Write("tok.model", bytes())).status());
          }};
}

const std::vector<TokenizerCase> kTokenizerCases = RegisterCases<TempDir>(
    "tokenizer files",
    {
        BadBin("tokbin-shorter-than-header", "a 3-byte tokenizer.bin", "4-byte header",
               [] { return std::string(3, '\0'); }),
        BadBin("tokbin-zero-max-length", "max_token_length 0", "max_token_length is 0",
               [] { return Bytes<int32_t>(0) + Token("<unk>"); }),
        BadBin("tokbin-negative-piece-length", "token 1 announces length -5",
               "token 1 at offset 17 has length -5",
               [] { return Bytes<int32_t>(8) + Token("<unk>") + Bytes<float>(0) +
                           Bytes<int32_t>(-5); }),
        BadBin("tokbin-piece-longer-than-max", "token 0 of 9 bytes, max_token_length 8",
               "token 0 at offset 4 has length 9",
               [] { return Bytes<int32_t>(8) + Token("123456789"); }),
        BadBin("tokbin-truncated", "the file cut inside the last token's bytes",
               "is truncated",
               [] {
                 std::string b = TokenizerBin();
                 b.resize(b.size() - 2);
                 return b;
               }),
        BadBin("tokbin-too-few-tokens", "only <unk>, <s>, </s>", "has 3 tokens",
               [] { return Bytes<int32_t>(8) + Token("<unk>") + Token("\n<s>\n") +
                           Token("\n</s>\n"); }),
        BadBin("tokbin-bad-byte-piece", "token 3 is \"xyz\" instead of <0x00>",
               "token 3 is \"xyz\"",
               [] { return TokenizerBin([](auto* t) { (*t)[3].first = "xyz"; }); }),
        BadBin("tokbin-nan-score", "token 260 has a NaN score", "piece 260 has a NaN score",
               [] { return TokenizerBin([](auto* t) { (*t)[260].second = kNaN; }); }),
        BadBin("tokbin-duplicate-piece", "tokens 259 and 260 are both \" a\"",
               "piece 260",
               [] { return TokenizerBin([](auto* t) { (*t)[260].first = " a"; }); }),
        BadSpm("spm-not-a-proto", "random bytes", "not a SentencePiece model",
               [] { return std::string("\xff\xff\xff\xff garbage", 12); }),
        BadSpm("spm-truncated", "the .model cut in the middle of a piece",
               "not a SentencePiece model",
               [] { return SpmModelBytes().substr(0, 11); }),
        BadSpm("spm-no-pieces", "a model without pieces", "no pieces",
               [] { return SpmModelBytes([](SpmModel* m) { m->clear_pieces(); }); }),
        BadSpm("spm-nan-score", "piece 3 has a NaN score", "piece 3 has a NaN score",
               [] {
                 return SpmModelBytes([](SpmModel* m) { m->mutable_pieces(3)->set_score(kNaN); });
               }),
        BadSpm("spm-empty-piece", "piece 4 is the empty string", "piece 4",
               [] {
                 return SpmModelBytes([](SpmModel* m) { m->mutable_pieces(4)->set_piece(""); });
               }),
        BadSpm("spm-duplicate-piece", "pieces 3 and 4 are both \"b\"",
               "piece 4 \"b\" is already defined",
               [] {
                 return SpmModelBytes([](SpmModel* m) { m->mutable_pieces(3)->set_piece("b"); });
               }),
        BadSpm("spm-two-unknown-pieces", "pieces 0 and 4 are both of type UNKNOWN",
               "pieces 0 and 4 both have type UNKNOWN",
               [] {
                 return SpmModelBytes([](SpmModel* m) {
                   m->mutable_pieces(4)->set_type(SpmModel::SentencePiece::UNKNOWN);
                 });
               }),
        BadSpm("spm-unsupported-model-type", "model_type WORD", "model_type WORD",
               [] {
                 return SpmModelBytes([](SpmModel* m) {
                   m->mutable_trainer_spec()->set_model_type(tokenizer::spm::TrainerSpec::WORD);
                 });
               }),
        BadSpm("spm-unsupported-normalizer", "normalizer nmt_nfkc", "normalizer \"nmt_nfkc\"",
               [] {
                 return SpmModelBytes(
                     [](SpmModel* m) { m->mutable_normalizer_spec()->set_name("nmt_nfkc"); });
               }),
    });

class TokenizerTest : public RowsWith<TokenizerCase, SuiteTempDir> {};

TEST_P(TokenizerTest, Rejected) { ExpectAnswer(GetParam(), GetParam().run(env())); }

INSTANTIATE_TEST_SUITE_P(Catalogue, TokenizerTest, ::testing::ValuesIn(kTokenizerCases),
                         CaseName<TempDir>);

TEST(TokenizerTest, TheBuildersMakeValidFiles) {
  TempDir dir("valid_tokenizers");
  auto bin = tokenizer::LoadLlama2cTokenizer(dir.Write("tokenizer.bin", TokenizerBin()));
  EXPECT_TRUE(bin.ok()) << bin.status();
  auto spm = tokenizer::LoadSentencePieceModel(dir.Write("tok.model", SpmModelBytes()));
  EXPECT_TRUE(spm.ok()) << spm.status();
}

}  // namespace
}  // namespace rlhf::bad_inputs
