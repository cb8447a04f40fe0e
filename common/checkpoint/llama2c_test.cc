#include "common/checkpoint/llama2c.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "common/checkpoint/hf.h"
#include "common/checkpoint/test_util.h"
#include "common/model/llama.h"

namespace rlhf::checkpoint {
namespace {

using ::rlhf::checkpoint::testing::ModelPath;
using ::rlhf::checkpoint::testing::ReadFileOrDie;
using ::rlhf::checkpoint::testing::SmallConfig;
using ::rlhf::checkpoint::testing::TempDir;
using ::rlhf::checkpoint::testing::WriteFileOrDie;
using ::rlhf::checkpoint::testing::WriteLlama2cOrDie;
using ::testing::HasSubstr;

constexpr uint64_t kStoriesBytes = 1056540;

void ExpectSameParameters(const model::Llama& a, const model::Llama& b) {
  auto pa = a->named_parameters();
  auto pb = b->named_parameters();
  ASSERT_EQ(pa.keys(), pb.keys());
  for (const auto& p : pa) {
    SCOPED_TRACE(p.key());
    EXPECT_TRUE(torch::equal(p.value(), pb[p.key()]));
  }
}

class Llama2cTest : public ::testing::Test {
 protected:
  // Writes `bytes` to bad.bin in the temp dir; expects loading to fail with InvalidArgument
  // naming the file and mentioning each of `substrings`.
  void ExpectInvalid(const std::string& bytes, const std::vector<std::string>& substrings) {
    const std::string path = dir_.Join("bad.bin");
    WriteFileOrDie(path, bytes);
    absl::StatusOr<model::Llama> m = LoadLlama2c(path);
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << m.status();
    EXPECT_THAT(m.status().message(), HasSubstr(path)) << m.status();
    for (const std::string& s : substrings) {
      EXPECT_THAT(m.status().message(), HasSubstr(s)) << m.status();
    }
  }

  // The stories260K.bin header with field `index` replaced by `value`, plus the original data.
  static std::string StoriesWithHeaderField(int index, int32_t value) {
    std::string bytes = ReadFileOrDie(ModelPath("stories260K.bin"));
    std::memcpy(bytes.data() + 4 * index, &value, 4);
    return bytes;
  }

  TempDir dir_;
};

TEST_F(Llama2cTest, LoadsStories260K) {
  absl::StatusOr<model::Llama> m = LoadLlama2c(ModelPath("stories260K.bin"));
  ASSERT_TRUE(m.ok()) << m.status();
  const model::LlamaConfig& c = (*m)->config();
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.hidden_dim, 172);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.max_seq_len, 512);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  // The embedding is the first array after the 28-byte header.
  const std::string bytes = ReadFileOrDie(ModelPath("stories260K.bin"));
  float first[2];
  std::memcpy(first, bytes.data() + 28, sizeof(first));
  EXPECT_EQ((*m)->embed_tokens->weight[0][0].item<float>(), first[0]);
  EXPECT_EQ((*m)->embed_tokens->weight[0][1].item<float>(), first[1]);
}

// The HF fixture is a lossless re-layout of the .bin with the q/k row permutation applied, so
// every parameter must match exactly.
TEST_F(Llama2cTest, MatchesHfFixtureExactly) {
  absl::StatusOr<model::Llama> bin = LoadLlama2c(ModelPath("stories260K.bin"));
  ASSERT_TRUE(bin.ok()) << bin.status();
  absl::StatusOr<model::Llama> hf = LoadHfLlama(ModelPath("stories260K-hf-no-lm-head"));
  ASSERT_TRUE(hf.ok()) << hf.status();
  ExpectSameParameters(*bin, *hf);
}

TEST_F(Llama2cTest, Version0WithSeparateClassifierRoundTrips) {
  absl::StatusOr<model::Llama> original = model::CreateRandomLlama(SmallConfig(), 3);
  ASSERT_TRUE(original.ok());
  const std::string path = dir_.Join("v0.bin");
  WriteLlama2cOrDie(*original, 0, path);
  absl::StatusOr<model::Llama> loaded = LoadLlama2c(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_FALSE((*loaded)->config().tie_embeddings);
  ExpectSameParameters(*original, *loaded);
}

TEST_F(Llama2cTest, Version1RoundTrips) {
  for (bool tied : {false, true}) {
    SCOPED_TRACE(tied ? "tied" : "separate classifier");
    model::LlamaConfig config = SmallConfig();
    config.tie_embeddings = tied;
    absl::StatusOr<model::Llama> original = model::CreateRandomLlama(config, 4);
    ASSERT_TRUE(original.ok());
    const std::string path = dir_.Join("v1.bin");
    WriteLlama2cOrDie(*original, 1, path);
    absl::StatusOr<model::Llama> loaded = LoadLlama2c(path);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    EXPECT_EQ((*loaded)->config().tie_embeddings, tied);
    ExpectSameParameters(*original, *loaded);
  }
}

TEST_F(Llama2cTest, MissingFileIsNotFound) {
  absl::StatusOr<model::Llama> m = LoadLlama2c(dir_.Join("nope.bin"));
  EXPECT_EQ(m.status().code(), absl::StatusCode::kNotFound) << m.status();
  EXPECT_THAT(m.status().message(), HasSubstr("nope.bin"));
}

TEST_F(Llama2cTest, FileShorterThanHeader) {
  ExpectInvalid(std::string(10, '\1'), {"file is 10 bytes, shorter than the 28-byte"});
}

TEST_F(Llama2cTest, TruncatedFile) {
  const std::string bytes = ReadFileOrDie(ModelPath("stories260K.bin"));
  ExpectInvalid(bytes.substr(0, bytes.size() - 100),
                {"implies 1056540 bytes", "file has 1056440 bytes", "truncated"});
}

TEST_F(Llama2cTest, TrailingBytes) {
  ExpectInvalid(ReadFileOrDie(ModelPath("stories260K.bin")) + "abcd",
                {"implies 1056540 bytes", "file has 1056544 bytes", "4 trailing bytes"});
}

TEST_F(Llama2cTest, HeadsNotDividingDim) {
  ExpectInvalid(StoriesWithHeaderField(3, 7), {"invalid llama2.c header", "n_heads 7"});
}

TEST_F(Llama2cTest, NonPositiveDim) {
  ExpectInvalid(StoriesWithHeaderField(0, -64), {"invalid llama2.c header", "dim must be > 0"});
}

TEST_F(Llama2cTest, WrongSizeForHeader) {
  // A plausible header that does not describe this file: 4 layers instead of 5.
  ExpectInvalid(StoriesWithHeaderField(2, 4),
                {"n_layers=4", "file has 1056540 bytes", "trailing bytes"});
}

TEST_F(Llama2cTest, UnsupportedVersion) {
  std::string bytes(256 + 64, '\0');
  const uint32_t magic = 0x616b3432;
  const int32_t version = 2;
  std::memcpy(bytes.data(), &magic, 4);
  std::memcpy(bytes.data() + 4, &version, 4);
  ExpectInvalid(bytes, {"unsupported llama2.c version 2"});
}

TEST_F(Llama2cTest, Version1FileShorterThanHeader) {
  std::string bytes(100, '\0');
  const uint32_t magic = 0x616b3432;
  std::memcpy(bytes.data(), &magic, 4);
  ExpectInvalid(bytes, {"shorter than the 256-byte"});
}

}  // namespace
}  // namespace rlhf::checkpoint
