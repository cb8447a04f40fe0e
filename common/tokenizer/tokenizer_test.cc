#include "common/tokenizer/tokenizer.h"

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/testing/shared_data.h"
#include "common/tokenizer/sentencepiece_model.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace rlhf::tokenizer {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::SizeIs;

// shared/golden/tokenizer.json, parsed once.
const nlohmann::json& Golden() {
  static const nlohmann::json* const golden = new nlohmann::json(
      rlhf::testing::LoadSharedJson("golden/tokenizer.json"));
  return *golden;
}

std::unique_ptr<Tokenizer> MustLoad(const std::string& path) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = LoadTokenizer(path);
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return tokenizer.ok() ? *std::move(tokenizer) : nullptr;
}

std::string FromHex(const nlohmann::json& hex) {
  return absl::HexStringToBytes(hex.get<std::string>());
}

// Golden tests for one tokenizer of tokenizer.json: its SentencePiece .model
// and the llama2.c .bin made from it.
class GoldenTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    spec_ = &Golden()["tokenizers"][GetParam()];
    // "model_file" is "shared/models/x.model"; the .bin sits beside it.
    const std::string relative = absl::StrReplaceAll(
        (*spec_)["model_file"].get<std::string>(), {{"shared/", ""}});
    model_path_ = rlhf::testing::SharedPath(relative);
    bin_path_ = absl::StrReplaceAll(model_path_, {{".model", ".bin"}});
    model_ = MustLoad(model_path_);
    bin_ = MustLoad(bin_path_);
    ASSERT_NE(model_, nullptr);
    ASSERT_NE(bin_, nullptr);
  }

  const nlohmann::json& cases() const { return (*spec_)["cases"]; }

  const nlohmann::json* spec_ = nullptr;
  std::string model_path_;
  std::string bin_path_;
  std::unique_ptr<Tokenizer> model_;
  std::unique_ptr<Tokenizer> bin_;
};

TEST_P(GoldenTest, VocabSizeAndSpecialIds) {
  for (const Tokenizer* t : {model_.get(), bin_.get()}) {
    EXPECT_EQ(t->vocab_size(), (*spec_)["vocab_size"].get<int>());
    EXPECT_EQ(t->bos_id(), (*spec_)["bos_id"].get<int>());
    EXPECT_EQ(t->eos_id(), (*spec_)["eos_id"].get<int>());
    EXPECT_EQ(t->unk_id(), (*spec_)["unk_id"].get<int>());
    EXPECT_EQ(t->IdToPiece(t->bos_id()), "<s>");
    EXPECT_EQ(t->IdToPiece(t->eos_id()), "</s>");
    EXPECT_EQ(t->IdToPiece(t->unk_id()), "<unk>");
    EXPECT_EQ(t->IdToPiece(3 + 0x0A), "<0x0A>");
  }
}

TEST_P(GoldenTest, EncodeMatchesSentencePiece) {
  for (const nlohmann::json& c : cases()) {
    const std::string text = FromHex(c["utf8_hex"]);
    const std::vector<int> ids = model_->Encode(text);
    EXPECT_THAT(ids, ElementsAreArray(c["ids"].get<std::vector<int>>()))
        << text;
    std::vector<std::string> pieces;
    for (const int id : ids) pieces.push_back(model_->IdToPiece(id));
    EXPECT_THAT(pieces,
                ElementsAreArray(c["pieces"].get<std::vector<std::string>>()))
        << text;
  }
}

TEST_P(GoldenTest, DecodeMatchesSentencePiece) {
  for (const Tokenizer* t : {model_.get(), bin_.get()}) {
    for (const nlohmann::json& c : cases()) {
      EXPECT_EQ(t->Decode(c["ids"].get<std::vector<int>>()),
                c["decoded"].get<std::string>());
    }
    for (const nlohmann::json& c : (*spec_)["decode_cases"]) {
      EXPECT_EQ(t->Decode(c["ids"].get<std::vector<int>>()),
                FromHex(c["decoded_utf8_hex"]));
    }
  }
}

TEST_P(GoldenTest, Llama2cBinEncodesLikeRunC) {
  for (const nlohmann::json& c : cases()) {
    const std::string text = FromHex(c["utf8_hex"]);
    EXPECT_THAT(bin_->Encode(text),
                ElementsAreArray(c["llama2c_bpe_ids"].get<std::vector<int>>()))
        << text;
  }
}

TEST_P(GoldenTest, BinHasTheModelsPieces) {
  ASSERT_EQ(bin_->vocab_size(), model_->vocab_size());
  for (int id = 0; id < model_->vocab_size(); ++id) {
    ASSERT_EQ(bin_->IdToPiece(id), model_->IdToPiece(id)) << id;
  }
}

TEST_P(GoldenTest, RoundTrips) {
  for (const nlohmann::json& c : cases()) {
    const std::string text = FromHex(c["utf8_hex"]);
    EXPECT_EQ(model_->Decode(model_->Encode(text)) == text,
              c["roundtrip_equal"].get<bool>())
        << text;
    EXPECT_EQ(bin_->Decode(bin_->Encode(text)),
              text);  // run.c keeps every space.
  }
}

TEST_P(GoldenTest, ControlAndInvalidIds) {
  const std::vector<int> hello = model_->Encode("Hello");
  std::vector<int> ids = {model_->bos_id()};
  ids.insert(ids.end(), hello.begin(), hello.end());
  ids.push_back(model_->eos_id());
  EXPECT_EQ(model_->Decode(ids), "Hello");
  // <unk> decodes to trainer_spec.unk_surface. llama2.c's train_vocab passed it
  // as a raw string, so tok512.model's is literally " \342\201\207 "
  // (backslashes and digits); sp.decode writes the same. The .bin files have no
  // unk_surface and use SentencePiece's default " ⁇ ".
  const std::string unk_surface =
      GetParam() == "tok512" ? " \\342\\201\\207 " : " \xE2\x81\x87 ";
  EXPECT_EQ(model_->Decode({model_->unk_id()}), unk_surface);
  EXPECT_EQ(model_->Decode({-1, model_->vocab_size()}),
            unk_surface + unk_surface);
  EXPECT_EQ(bin_->Decode({bin_->unk_id(), 1, 2}), " \xE2\x81\x87 ");
  EXPECT_EQ(model_->IdToPiece(-1), "");
  EXPECT_EQ(model_->IdToPiece(model_->vocab_size()), "");
}

TEST_P(GoldenTest, MalformedUtf8BecomesReplacementCharacter) {
  const std::string text =
      "a\xff"
      "b\xc3";
  EXPECT_EQ(model_->Decode(model_->Encode(text)),
            "a\xEF\xBF\xBD"
            "b\xEF\xBF\xBD");
  // run.c falls back to the raw bytes; decoding turns each malformed byte into
  // U+FFFD.
  EXPECT_EQ(bin_->Decode(bin_->Encode(text)),
            "a\xEF\xBF\xBD"
            "b\xEF\xBF\xBD");
  // A lone continuation byte right after the dummy prefix.
  EXPECT_EQ(bin_->Decode(bin_->Encode("\x80x")), "\xEF\xBF\xBDx");
}

TEST_P(GoldenTest, LongTextIsFastAndRoundTrips) {
  std::string text;
  while (text.size() < 8000) {
    text +=
        "Once upon a time, naïve Lily saw 日本語 and 😀 in the park. x = "
        "3.14159;\n";
  }
  for (const Tokenizer* t : {model_.get(), bin_.get()}) {
    const absl::Time start = absl::Now();
    const std::vector<int> ids = t->Encode(text);
    EXPECT_LT(absl::Now() - start, absl::Seconds(2));
    EXPECT_EQ(t->Decode(ids), text);
  }
}

TEST_P(GoldenTest, ConcurrentEncodeAgrees) {
  const std::string text =
      "Once upon a time, there was a little girl named Lily.";
  const std::vector<int> expected = model_->Encode(text);
  std::vector<std::vector<int>> results(4);
  std::vector<std::thread> threads;
  for (auto& result : results) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) result = model_->Encode(text);
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const auto& result : results) EXPECT_EQ(result, expected);
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, GoldenTest,
                         ::testing::Values("llama2_32k", "tok512"));

// -----------------------------------------------------------------------------
// Bad files: errors naming the file, never crashes.

std::string ReadShared(const std::string& relative) {
  std::ifstream in(rlhf::testing::SharedPath(relative), std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in),
                     std::istreambuf_iterator<char>());
}

// Writes `contents` to a fresh file under the test temp dir; returns its path.
std::string WriteTemp(const std::string& name, std::string_view contents) {
  const std::string path = ::testing::TempDir() + "/tokenizer_test_" + name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  out.close();
  EXPECT_TRUE(out.good()) << path;
  return path;
}

void ExpectError(const std::string& path, absl::StatusCode code,
                 const std::string& substring) {
  const absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer =
      LoadTokenizer(path);
  ASSERT_FALSE(tokenizer.ok()) << path;
  EXPECT_EQ(tokenizer.status().code(), code) << tokenizer.status();
  EXPECT_THAT(tokenizer.status().message(), HasSubstr(path));
  EXPECT_THAT(tokenizer.status().message(), HasSubstr(substring));
}

TEST(BadFileTest, MissingFileIsNotFound) {
  const std::string dir = ::testing::TempDir() + "/no_such_dir";
  for (const std::string& path :
       {dir + "/tokenizer.model", dir + "/tokenizer.bin"}) {
    ExpectError(path, absl::StatusCode::kNotFound, "");
  }
  EXPECT_EQ(LoadSentencePieceModel(dir + "/x").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(LoadLlama2cTokenizer(dir + "/x").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(BadFileTest, UnknownExtension) {
  const std::string path = WriteTemp("vocab.txt", "hello");
  ExpectError(path, absl::StatusCode::kInvalidArgument,
              "unknown tokenizer format");
}

TEST(BadFileTest, BrokenSentencePieceModels) {
  const std::string model = ReadShared("models/tokenizer.model");
  ASSERT_THAT(model, SizeIs(499723));
  const std::string bin = ReadShared("models/tok512.bin");
  const std::vector<std::pair<std::string, std::string>> files = {
      {"empty.model", ""},
      {"truncated_1.model", model.substr(0, 1)},
      {"truncated_100.model", model.substr(0, 100)},
      {"truncated_half.model", model.substr(0, model.size() / 2)},
      {"truncated_end.model", model.substr(0, model.size() - 1)},
      {"text.model", "this is not a protobuf, just some text\n"},
      {"garbage.model", std::string(4096, '\xff')},
      {"llama2c.model", bin},
  };
  for (const auto& [name, contents] : files) {
    SCOPED_TRACE(name);
    ExpectError(WriteTemp(name, contents), absl::StatusCode::kInvalidArgument,
                "not a SentencePiece model");
  }
}

// A small valid model; tests change one field to make it unsupported.
spm::ModelProto TinyModel() {
  spm::ModelProto model;
  auto add = [&](const std::string& piece,
                 spm::ModelProto::SentencePiece::Type type) {
    auto* p = model.add_pieces();
    p->set_piece(piece);
    p->set_type(type);
  };
  add("<unk>", spm::ModelProto::SentencePiece::UNKNOWN);
  add("<s>", spm::ModelProto::SentencePiece::CONTROL);
  add("</s>", spm::ModelProto::SentencePiece::CONTROL);
  add("\xE2\x96\x81", spm::ModelProto::SentencePiece::NORMAL);
  add("a", spm::ModelProto::SentencePiece::NORMAL);
  model.mutable_trainer_spec()->set_model_type(spm::TrainerSpec::BPE);
  model.mutable_normalizer_spec()->set_name("identity");
  return model;
}

TEST(BadFileTest, OurOwnSerializedModelLoads) {
  const absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer =
      LoadTokenizer(WriteTemp("tiny.model", TinyModel().SerializeAsString()));
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_THAT((*tokenizer)->Encode("a a"), ElementsAreArray({3, 4, 3, 4}));
  EXPECT_EQ((*tokenizer)->Decode({3, 4, 3, 4}), "a a");
}

TEST(BadFileTest, UnsupportedSentencePieceFeatures) {
  spm::ModelProto nfkc = TinyModel();
  nfkc.mutable_normalizer_spec()->set_name("nmt_nfkc");
  ExpectError(WriteTemp("nfkc.model", nfkc.SerializeAsString()),
              absl::StatusCode::kInvalidArgument, "normalizer \"nmt_nfkc\"");
  spm::ModelProto charsmap = TinyModel();
  charsmap.mutable_normalizer_spec()->set_precompiled_charsmap("\x01\x02");
  ExpectError(WriteTemp("charsmap.model", charsmap.SerializeAsString()),
              absl::StatusCode::kInvalidArgument, "character map");
  spm::ModelProto word = TinyModel();
  word.mutable_trainer_spec()->set_model_type(spm::TrainerSpec::WORD);
  ExpectError(WriteTemp("word.model", word.SerializeAsString()),
              absl::StatusCode::kInvalidArgument, "model_type WORD");
  spm::ModelProto suffix = TinyModel();
  suffix.mutable_trainer_spec()->set_treat_whitespace_as_suffix(true);
  ExpectError(WriteTemp("suffix.model", suffix.SerializeAsString()),
              absl::StatusCode::kInvalidArgument, "treat_whitespace_as_suffix");
  spm::ModelProto no_unk = TinyModel();
  no_unk.mutable_pieces(0)->set_type(spm::ModelProto::SentencePiece::NORMAL);
  ExpectError(WriteTemp("no_unk.model", no_unk.SerializeAsString()),
              absl::StatusCode::kInvalidArgument, "UNKNOWN");
}

// Serializes a llama2.c tokenizer.bin (host byte order: the tests run on
// little-endian x86/ARM).
std::string BinFile(int32_t max_token_length,
                    const std::vector<std::string>& tokens) {
  std::string out(reinterpret_cast<const char*>(&max_token_length), 4);
  for (const std::string& token : tokens) {
    const float score = 0.0f;
    const int32_t length = static_cast<int32_t>(token.size());
    out.append(reinterpret_cast<const char*>(&score), 4);
    out.append(reinterpret_cast<const char*>(&length), 4);
    out += token;
  }
  return out;
}

TEST(BadFileTest, BrokenLlama2cTokenizers) {
  const std::string bin = ReadShared("models/tokenizer.bin");
  ASSERT_THAT(bin, SizeIs(433869));
  std::string negative = bin;
  const int32_t minus_five = -5;
  std::memcpy(&negative[4 + 4], &minus_five, 4);  // Length of token 0.
  std::string too_long = bin;
  const int32_t thousand = 1000;
  std::memcpy(&too_long[4 + 4], &thousand, 4);
  std::string bad_max = bin;
  const int32_t zero = 0;
  std::memcpy(&bad_max[0], &zero, 4);
  std::string bad_byte = bin;
  bad_byte.replace(bin.find("<0x41>"), 6, "<0x42>");
  const std::vector<std::tuple<std::string, std::string, std::string>> files = {
      {"empty.bin", "", "shorter than the 4-byte header"},
      {"header_only_part.bin", bin.substr(0, 3),
       "shorter than the 4-byte header"},
      {"header_only.bin", bin.substr(0, 4), "fewer than the 259"},
      {"mid_record_header.bin", bin.substr(0, 10),
       "truncated in the header of token 0"},
      {"mid_record_bytes.bin", bin.substr(0, 14),
       "token 0 at offset 4 is truncated"},
      {"mid_last_record.bin", bin.substr(0, bin.size() - 1), "is truncated"},
      {"negative_length.bin", negative, "has length -5"},
      {"too_long.bin", too_long, "has length 1000"},
      {"bad_max_length.bin", bad_max, "max_token_length is 0"},
      {"bad_byte_piece.bin", bad_byte, "not <0x41>"},
      {"three_tokens.bin", BinFile(8, {"<unk>", "\n<s>\n", "\n</s>\n"}),
       "fewer than the 259"},
      {"garbage.bin", std::string(4096, '\xff'), "max_token_length is -1"},
      {"sentencepiece.bin", ReadShared("models/tok512.model"),
       "not a llama2.c tokenizer"},
  };
  for (const auto& [name, contents, message] : files) {
    SCOPED_TRACE(name);
    ExpectError(WriteTemp(name, contents), absl::StatusCode::kInvalidArgument,
                message);
  }
}

TEST(BadFileTest, DirectoryIsAnError) {
  const std::string dir = ::testing::TempDir() + "/tokenizer_test_dir.model";
  std::filesystem::create_directories(dir);
  const absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer =
      LoadTokenizer(dir);
  ASSERT_FALSE(tokenizer.ok());
  EXPECT_THAT(tokenizer.status().message(), HasSubstr(dir));
}

}  // namespace
}  // namespace rlhf::tokenizer
