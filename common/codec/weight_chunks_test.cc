#include "common/codec/weight_chunks.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/codec/crc32c.h"

namespace rlhf::codec {
namespace {

using ::testing::HasSubstr;
using Chunks = std::vector<rlhf::v1::WeightChunk>;

// A state dict with every wire dtype, a 0-d and an empty tensor, and a non-contiguous one.
NamedTensors SampleTensors() {
  torch::manual_seed(3);
  return {
      {"embed.weight", torch::randn({5, 4})},                         // 80 bytes
      {"norm.weight", torch::randn({6}).to(torch::kBFloat16)},        // 12 bytes
      {"scale", torch::tensor(0.5, torch::kFloat64)},                 // 8 bytes, 0-d
      {"empty", torch::empty({0, 3}, torch::kFloat16)},               // 0 bytes
      {"ids", torch::arange(12, torch::kInt64).reshape({3, 4}).t()},  // 96 bytes, strided
      {"counts", torch::arange(7, torch::kInt32)},                    // 28 bytes
  };
}
constexpr int64_t kSampleBytes = 80 + 12 + 8 + 0 + 96 + 28;

Chunks ChunkAll(const NamedTensors& tensors, int64_t version, int64_t max_chunk_bytes) {
  absl::StatusOr<std::unique_ptr<WeightChunker>> chunker =
      WeightChunker::Create(tensors, version, max_chunk_bytes);
  EXPECT_TRUE(chunker.ok()) << chunker.status();
  Chunks chunks;
  while (chunker.ok() && !(*chunker)->Done()) {
    absl::Status status = (*chunker)->Next(&chunks.emplace_back());
    EXPECT_TRUE(status.ok()) << status;
  }
  return chunks;
}

// Feeds `chunks` in order; returns the first error or the assembled tensors.
absl::StatusOr<NamedTensors> Assemble(const Chunks& chunks) {
  WeightAssembler assembler;
  for (const rlhf::v1::WeightChunk& chunk : chunks) {
    absl::Status status = assembler.Add(chunk);
    if (!status.ok()) return status;
  }
  return assembler.Finish();
}

void ExpectSameTensors(const NamedTensors& actual, const NamedTensors& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    SCOPED_TRACE(expected[i].first);
    EXPECT_EQ(actual[i].first, expected[i].first);
    EXPECT_EQ(actual[i].second.scalar_type(), expected[i].second.scalar_type());
    EXPECT_EQ(actual[i].second.sizes(), expected[i].second.sizes());
    EXPECT_TRUE(torch::equal(actual[i].second, expected[i].second));
  }
}

// Checks the stream layout described in weight_chunks.h.
void ExpectWellFormed(const Chunks& chunks, const NamedTensors& tensors, int64_t max_bytes) {
  size_t tensor = 0;
  int64_t expected_offset = 0;
  for (size_t i = 0; i < chunks.size(); ++i) {
    const rlhf::v1::WeightChunk& c = chunks[i];
    ASSERT_LT(tensor, tensors.size()) << "chunk " << i;
    EXPECT_EQ(c.version(), 9);
    EXPECT_LE(static_cast<int64_t>(c.data().size()), max_bytes);
    EXPECT_EQ(c.crc32c(), Crc32c(c.data()));
    EXPECT_EQ(c.last(), i + 1 == chunks.size());
    const int64_t size = tensors[tensor].second.numel() * tensors[tensor].second.element_size();
    if (expected_offset == 0) {
      EXPECT_EQ(c.name(), tensors[tensor].first);
      EXPECT_EQ(c.shape_size(), tensors[tensor].second.dim());
    } else {
      EXPECT_TRUE(c.name().empty());
      EXPECT_EQ(c.dtype(), rlhf::v1::DTYPE_UNSPECIFIED);
      EXPECT_EQ(c.shape_size(), 0);
    }
    EXPECT_EQ(c.offset(), expected_offset);
    expected_offset += static_cast<int64_t>(c.data().size());
    if (expected_offset == size) {
      ++tensor;
      expected_offset = 0;
    }
  }
  EXPECT_EQ(tensor, tensors.size());
  EXPECT_EQ(chunks.back().total_tensors(), static_cast<int64_t>(tensors.size()));
  EXPECT_EQ(chunks.back().total_bytes(), kSampleBytes);
}

class ChunkSizeTest : public ::testing::TestWithParam<int64_t> {};

TEST_P(ChunkSizeTest, RoundTripsAndIsWellFormed) {
  const NamedTensors tensors = SampleTensors();
  const Chunks chunks = ChunkAll(tensors, /*version=*/9, GetParam());
  ExpectWellFormed(chunks, tensors, GetParam());
  absl::StatusOr<NamedTensors> assembled = Assemble(chunks);
  ASSERT_TRUE(assembled.ok()) << assembled.status();
  ExpectSameTensors(*assembled, tensors);
}

// 1 and 7 split everywhere; 4 divides every tensor's size exactly; 1 GiB is larger than all.
INSTANTIATE_TEST_SUITE_P(Sizes, ChunkSizeTest, ::testing::Values(1, 7, 4, int64_t{1} << 30));

TEST(WeightChunkerTest, ExactLayout) {
  const NamedTensors tensors = {{"a", torch::arange(6, torch::kFloat32)},
                                {"b", torch::empty({0}, torch::kInt64)}};
  const Chunks chunks = ChunkAll(tensors, /*version=*/4, /*max_chunk_bytes=*/8);
  ASSERT_EQ(chunks.size(), 4u);
  EXPECT_EQ(chunks[0].name(), "a");
  EXPECT_EQ(chunks[0].dtype(), rlhf::v1::DTYPE_FLOAT32);
  EXPECT_THAT(chunks[0].shape(), ::testing::ElementsAre(6));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(chunks[i].offset(), 8 * i);
    EXPECT_EQ(chunks[i].data().size(), 8u);
    EXPECT_FALSE(chunks[i].last());
  }
  EXPECT_EQ(chunks[3].name(), "b");
  EXPECT_EQ(chunks[3].dtype(), rlhf::v1::DTYPE_INT64);
  EXPECT_TRUE(chunks[3].data().empty());
  EXPECT_TRUE(chunks[3].last());
  EXPECT_EQ(chunks[3].total_tensors(), 2);
  EXPECT_EQ(chunks[3].total_bytes(), 24);
}

TEST(WeightChunkerTest, NoTensorsIsOneTerminatorChunk) {
  const Chunks chunks = ChunkAll({}, /*version=*/2, /*max_chunk_bytes=*/16);
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_TRUE(chunks[0].last());
  EXPECT_EQ(chunks[0].total_tensors(), 0);
  WeightAssembler assembler;
  ASSERT_TRUE(assembler.Add(chunks[0]).ok());
  EXPECT_TRUE(assembler.done());
  EXPECT_EQ(assembler.version(), 2);
  absl::StatusOr<NamedTensors> tensors = assembler.Finish();
  ASSERT_TRUE(tensors.ok()) << tensors.status();
  EXPECT_TRUE(tensors->empty());
}

TEST(WeightChunkerTest, CreateRejectsBadInput) {
  const torch::Tensor t = torch::zeros({2});
  auto code = [](NamedTensors tensors, int64_t max_bytes) {
    return WeightChunker::Create(std::move(tensors), 1, max_bytes).status().code();
  };
  EXPECT_EQ(code({{"a", t}}, 0), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code({{"", t}}, 8), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code({{"a", t}, {"a", t}}, 8), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code({{"a", torch::Tensor()}}, 8), absl::StatusCode::kInvalidArgument);
  absl::Status status =
      WeightChunker::Create({{"mask", torch::zeros({2}, torch::kBool)}}, 1, 8).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("tensor 'mask'"));
}

// Two tensors, 24 + 12 bytes, in chunks of 8: a@0 a@8 a@16 b@0 b@8(last).
class WeightAssemblerTest : public ::testing::Test {
 protected:
  const NamedTensors tensors_ = {{"a", torch::arange(6, torch::kFloat32)},
                                 {"b", torch::arange(3, torch::kInt32)}};
  Chunks chunks_ = ChunkAll(tensors_, /*version=*/5, /*max_chunk_bytes=*/8);

  // Recomputes the CRC after a test edited a chunk's data on purpose.
  static void Reseal(rlhf::v1::WeightChunk* chunk) { chunk->set_crc32c(Crc32c(chunk->data())); }

  // Assembles chunks_, expects `code` and returns the message.
  std::string AssembleError(absl::StatusCode code) {
    absl::StatusOr<NamedTensors> result = Assemble(chunks_);
    EXPECT_EQ(result.status().code(), code) << result.status();
    return std::string(result.status().message());
  }
};

TEST_F(WeightAssemblerTest, Baseline) {
  ASSERT_EQ(chunks_.size(), 5u);
  absl::StatusOr<NamedTensors> result = Assemble(chunks_);
  ASSERT_TRUE(result.ok()) << result.status();
  ExpectSameTensors(*result, tensors_);
}

TEST_F(WeightAssemblerTest, CorruptedByteIsDataLoss) {
  chunks_[1].mutable_data()->at(3) ^= 0x20;
  const std::string message = AssembleError(absl::StatusCode::kDataLoss);
  EXPECT_THAT(message, HasSubstr("CRC32C mismatch"));
  EXPECT_THAT(message, HasSubstr("offset 8 of tensor 'a'"));
}

TEST_F(WeightAssemblerTest, CorruptedFirstChunkNamesItsTensor) {
  chunks_[3].mutable_data()->at(0) ^= 0x01;
  EXPECT_THAT(AssembleError(absl::StatusCode::kDataLoss), HasSubstr("tensor 'b'"));
}

TEST_F(WeightAssemblerTest, VersionChangeMidStream) {
  chunks_[2].set_version(6);
  const std::string message = AssembleError(absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(message, HasSubstr("version changed mid-stream from 5 to 6"));
  EXPECT_THAT(message, HasSubstr("tensor 'a'"));
}

TEST_F(WeightAssemblerTest, ContinuationWithoutStartedTensor) {
  chunks_.erase(chunks_.begin());
  EXPECT_THAT(AssembleError(absl::StatusCode::kInvalidArgument), HasSubstr("belongs to no tensor"));
}

TEST_F(WeightAssemblerTest, OutOfOrderOffsets) {
  std::swap(chunks_[1], chunks_[2]);
  const std::string message = AssembleError(absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(message, HasSubstr("tensor 'a': chunk at offset 16, expected offset 8"));
}

TEST_F(WeightAssemblerTest, MissingChunkThenNextTensor) {
  chunks_.erase(chunks_.begin() + 2);
  EXPECT_THAT(AssembleError(absl::StatusCode::kInvalidArgument),
              HasSubstr("tensor 'a' is incomplete (16 of 24 bytes) when tensor 'b' starts"));
}

TEST_F(WeightAssemblerTest, DataPastTheTensorsSize) {
  chunks_[2].mutable_data()->append("xy");
  Reseal(&chunks_[2]);
  EXPECT_THAT(AssembleError(absl::StatusCode::kInvalidArgument),
              HasSubstr("tensor 'a': chunk [16, 26) runs past the tensor's 24 bytes"));
}

TEST_F(WeightAssemblerTest, LastWithWrongTotals) {
  chunks_.back().set_total_bytes(35);
  EXPECT_THAT(AssembleError(absl::StatusCode::kInvalidArgument),
              HasSubstr("says 2 tensors and 35 bytes, received 2 tensors and 36 bytes"));
  chunks_.back().set_total_bytes(36);
  chunks_.back().set_total_tensors(3);
  EXPECT_THAT(AssembleError(absl::StatusCode::kInvalidArgument), HasSubstr("says 3 tensors"));
}

TEST_F(WeightAssemblerTest, LastWithIncompleteTensor) {
  chunks_.resize(2);
  chunks_.back().set_last(true);
  chunks_.back().set_total_tensors(1);
  chunks_.back().set_total_bytes(16);
  EXPECT_THAT(AssembleError(absl::StatusCode::kInvalidArgument),
              HasSubstr("tensor 'a' is incomplete at the last chunk (16 of 24 bytes)"));
}

TEST_F(WeightAssemblerTest, DataAfterLastAndStickyErrors) {
  WeightAssembler assembler;
  for (const auto& chunk : chunks_) ASSERT_TRUE(assembler.Add(chunk).ok());
  EXPECT_TRUE(assembler.done());
  absl::Status status = assembler.Add(chunks_.back());
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("after the last chunk of version 5"));
  // The error sticks: later calls return it again.
  EXPECT_EQ(assembler.Add(chunks_[0]), status);
  EXPECT_EQ(assembler.Finish().status(), status);
}

TEST_F(WeightAssemblerTest, TruncatedStream) {
  WeightAssembler assembler;
  for (size_t i = 0; i + 1 < chunks_.size(); ++i) ASSERT_TRUE(assembler.Add(chunks_[i]).ok());
  EXPECT_FALSE(assembler.done());
  absl::Status status = assembler.Finish().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("ended before its last chunk"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("tensor 'b' has 8 of 12 bytes"));
}

TEST_F(WeightAssemblerTest, BadFirstChunks) {
  chunks_[3].set_name("a");
  Reseal(&chunks_[3]);
  EXPECT_THAT(AssembleError(absl::StatusCode::kInvalidArgument),
              HasSubstr("tensor 'a' is sent twice"));

  chunks_ = ChunkAll(tensors_, 5, 8);
  chunks_[3].set_offset(4);
  EXPECT_THAT(AssembleError(absl::StatusCode::kInvalidArgument),
              HasSubstr("first chunk of tensor 'b' has offset 4, expected 0"));

  chunks_ = ChunkAll(tensors_, 5, 8);
  chunks_[3].set_dtype(rlhf::v1::DTYPE_UNSPECIFIED);
  EXPECT_THAT(AssembleError(absl::StatusCode::kInvalidArgument),
              HasSubstr("tensor 'b': dtype is DTYPE_UNSPECIFIED"));

  chunks_ = ChunkAll(tensors_, 5, 8);
  chunks_[3].set_shape(0, -3);
  EXPECT_THAT(AssembleError(absl::StatusCode::kInvalidArgument),
              HasSubstr("tensor 'b': shape [-3] has a negative dimension"));
}

TEST_F(WeightAssemblerTest, MaxTotalBytes) {
  WeightAssembler assembler(/*max_total_bytes=*/30);
  absl::Status status;
  for (const auto& chunk : chunks_) {
    status = assembler.Add(chunk);
    if (!status.ok()) break;
  }
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("tensor 'b' (12 bytes) takes version 5 past the limit of 30 bytes"));
}

}  // namespace
}  // namespace rlhf::codec
