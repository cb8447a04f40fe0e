#include "common/checkpoint/safetensors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>

#include "absl/status/status.h"
#include "common/checkpoint/test_util.h"

namespace rlhf::checkpoint {
namespace {

using ::rlhf::checkpoint::testing::ModelPath;
using ::rlhf::checkpoint::testing::ReadFileOrDie;
using ::rlhf::checkpoint::testing::SafetensorsBytes;
using ::rlhf::checkpoint::testing::TempDir;
using ::rlhf::checkpoint::testing::WriteFileOrDie;
using ::testing::HasSubstr;

class SafetensorsTest : public ::testing::Test {
 protected:
  // Writes `bytes` to a file in the temp dir and reads it back.
  absl::StatusOr<SafetensorsFile> ReadBytes(const std::string& bytes) {
    const std::string path = dir_.Join("bad.safetensors");
    WriteFileOrDie(path, bytes);
    return ReadSafetensors(path);
  }

  // Expects reading `bytes` to fail with InvalidArgument mentioning the file and `substring`.
  void ExpectInvalid(const std::string& bytes, const std::string& substring) {
    absl::StatusOr<SafetensorsFile> file = ReadBytes(bytes);
    ASSERT_FALSE(file.ok());
    EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument) << file.status();
    EXPECT_THAT(file.status().message(), HasSubstr("bad.safetensors")) << file.status();
    EXPECT_THAT(file.status().message(), HasSubstr(substring)) << file.status();
  }

  TempDir dir_;
};

TEST_F(SafetensorsTest, RoundTripKeepsOrderDtypesValuesAndMetadata) {
  torch::manual_seed(1);
  NamedTensors tensors = {
      {"z.f32", torch::randn({3, 5})},
      {"a.f16", torch::randn({4}).to(torch::kFloat16)},
      {"m.bf16", torch::randn({2, 3}).to(torch::kBFloat16)},
      {"f64", torch::randn({2, 2}, torch::kFloat64)},
      {"i64", torch::arange(-3, 3, torch::kInt64)},
      {"i32", torch::arange(0, 7, torch::kInt32)},
      {"empty", torch::zeros({0, 4})},
      {"scalar", torch::tensor(2.5f).reshape({})},
      // Non-contiguous: written as its contiguous copy.
      {"transposed", torch::randn({3, 4}).t()},
  };
  const std::string path = dir_.Join("t.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, tensors, {{"format", "pt"}, {"note", "x"}}).ok());

  absl::StatusOr<SafetensorsFile> file = ReadSafetensors(path);
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_EQ(file->tensors.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    SCOPED_TRACE(tensors[i].first);
    EXPECT_EQ(file->tensors[i].first, tensors[i].first);
    EXPECT_EQ(file->tensors[i].second.scalar_type(), tensors[i].second.scalar_type());
    EXPECT_TRUE(torch::equal(file->tensors[i].second, tensors[i].second));
  }
  EXPECT_EQ(file->metadata.size(), 2u);
  EXPECT_EQ(file->metadata.at("format"), "pt");

  // The header is space-padded to a multiple of 8 bytes.
  const std::string bytes = ReadFileOrDie(path);
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  EXPECT_EQ(header_len % 8, 0u);
}

TEST_F(SafetensorsTest, WriteReplacesFileAndLeavesNoTemporaryFiles) {
  const std::string path = dir_.Join("t.safetensors");
  WriteFileOrDie(path, "old content");
  ASSERT_TRUE(WriteSafetensors(path, {{"x", torch::ones({2})}}).ok());
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir_.path())) {
    EXPECT_EQ(entry.path().filename(), "t.safetensors");
    ++files;
  }
  EXPECT_EQ(files, 1);
  absl::StatusOr<SafetensorsFile> file = ReadSafetensors(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE(torch::equal(file->tensors.at(0).second, torch::ones({2})));
}

TEST_F(SafetensorsTest, WriteRejectsDuplicateNames) {
  absl::Status s = WriteSafetensors(dir_.Join("t.safetensors"),
                                    {{"x", torch::ones({2})}, {"x", torch::ones({3})}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("duplicate name"));
  EXPECT_FALSE(std::filesystem::exists(dir_.Join("t.safetensors")));
}

TEST_F(SafetensorsTest, WriteRejectsUnsupportedDtype) {
  absl::Status s =
      WriteSafetensors(dir_.Join("t.safetensors"), {{"c", torch::ones({2}, torch::kComplexFloat)}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("unsupported dtype"));
}

TEST_F(SafetensorsTest, ReadsSharedFixture) {
  absl::StatusOr<SafetensorsFile> file =
      ReadSafetensors(ModelPath("stories260K-hf/model.safetensors"));
  ASSERT_TRUE(file.ok()) << file.status();
  // embed + 5 layers x 9 + norm + lm_head.
  EXPECT_EQ(file->tensors.size(), 48u);
  EXPECT_EQ(file->tensors.front().first, "model.embed_tokens.weight");
  EXPECT_EQ(file->tensors.front().second.sizes(), (std::vector<int64_t>{512, 64}));
  EXPECT_EQ(file->metadata.at("format"), "pt");
}

TEST_F(SafetensorsTest, MissingFileIsNotFound) {
  absl::StatusOr<SafetensorsFile> file = ReadSafetensors(dir_.Join("nope.safetensors"));
  EXPECT_EQ(file.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(file.status().message(), HasSubstr("nope.safetensors"));
}

TEST_F(SafetensorsTest, FileShorterThanEightBytes) {
  ExpectInvalid("abc", "shorter than the 8-byte header length");
}

TEST_F(SafetensorsTest, TruncatedFile) {
  // Cut the real fixture in half: the last tensors end beyond the data region.
  const std::string bytes = ReadFileOrDie(ModelPath("stories260K-hf/model.safetensors"));
  ExpectInvalid(bytes.substr(0, bytes.size() / 2), "beyond the data region");
}

TEST_F(SafetensorsTest, HeaderLengthTooBig) {
  std::string bytes = SafetensorsBytes("{}      ", 0);
  const uint64_t huge = 1000;
  std::memcpy(bytes.data(), &huge, 8);
  ExpectInvalid(bytes, "header length 1000 is beyond the end of the file");
}

TEST_F(SafetensorsTest, HeaderNotJson) {
  ExpectInvalid(SafetensorsBytes("{\"x\": {\"dtype\": ", 16), "header is not valid JSON");
}

TEST_F(SafetensorsTest, HeaderNotAnObject) {
  ExpectInvalid(SafetensorsBytes("[1, 2, 3]", 0), "header is not a JSON object");
}

TEST_F(SafetensorsTest, UnknownDtype) {
  ExpectInvalid(SafetensorsBytes(R"({"x":{"dtype":"F8","shape":[2],"data_offsets":[0,2]}})", 2),
                "tensor 'x': unknown dtype 'F8'");
}

TEST_F(SafetensorsTest, NegativeShape) {
  ExpectInvalid(SafetensorsBytes(R"({"x":{"dtype":"F32","shape":[-1,2],"data_offsets":[0,8]}})", 8),
                "negative");
}

TEST_F(SafetensorsTest, DataOffsetsNotAPair) {
  ExpectInvalid(SafetensorsBytes(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8),
                "data_offsets must be [begin, end]");
}

TEST_F(SafetensorsTest, DataOffsetsEndBeforeBegin) {
  ExpectInvalid(SafetensorsBytes(R"({"x":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", 8),
                "end < begin");
}

TEST_F(SafetensorsTest, OffsetsOutOfRange) {
  ExpectInvalid(SafetensorsBytes(R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})", 16),
                "beyond the data region (16 bytes)");
}

TEST_F(SafetensorsTest, OverlappingOffsets) {
  ExpectInvalid(SafetensorsBytes(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                                 R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                                 16),
                "tensors 'a' [0, 16) and 'b' [8, 16) overlap");
}

TEST_F(SafetensorsTest, SizeMismatchVsShape) {
  ExpectInvalid(SafetensorsBytes(R"({"x":{"dtype":"BF16","shape":[3,2],"data_offsets":[0,8]}})", 8),
                "byte size 8 does not match shape [3,2] and dtype BF16 (12 bytes)");
}

TEST_F(SafetensorsTest, DuplicateNames) {
  ExpectInvalid(SafetensorsBytes(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                 R"("x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                                 8),
                "duplicate tensor name 'x'");
}

TEST_F(SafetensorsTest, MetadataMustMapStringsToStrings) {
  ExpectInvalid(SafetensorsBytes(R"({"__metadata__":{"format":1}})", 0),
                "__metadata__ value for 'format' is not a string");
}

}  // namespace
}  // namespace rlhf::checkpoint
