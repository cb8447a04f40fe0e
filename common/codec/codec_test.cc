#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/codec/tensor_codec.h"

namespace rlhf::codec {
namespace {

using ::testing::HasSubstr;

rlhf::v1::Tensor Encoded(const torch::Tensor& t) {
  rlhf::v1::Tensor proto;
  absl::Status status = EncodeTensor(t, &proto);
  EXPECT_TRUE(status.ok()) << status;
  return proto;
}

torch::Tensor RoundTrip(const torch::Tensor& t) {
  absl::StatusOr<torch::Tensor> decoded = DecodeTensor(Encoded(t));
  EXPECT_TRUE(decoded.ok()) << decoded.status();
  return decoded.ok() ? *decoded : torch::Tensor();
}

void ExpectSameTensor(const torch::Tensor& actual, const torch::Tensor& expected) {
  ASSERT_TRUE(actual.defined());
  EXPECT_EQ(actual.scalar_type(), expected.scalar_type());
  EXPECT_EQ(actual.sizes(), expected.sizes());
  EXPECT_TRUE(actual.is_contiguous());
  EXPECT_TRUE(actual.device().is_cpu());
  EXPECT_TRUE(torch::equal(actual, expected.cpu()));
}

struct DTypeCase {
  torch::ScalarType torch;
  rlhf::v1::DType wire;
  int64_t size;
};

class CodecDTypeTest : public ::testing::TestWithParam<DTypeCase> {
 protected:
  torch::Tensor Sample(std::vector<int64_t> shape) const {
    torch::manual_seed(7);
    return (torch::randn(shape, torch::kFloat64) * 100).to(GetParam().torch);
  }
};

TEST_P(CodecDTypeTest, RoundTripsContiguous) {
  const torch::Tensor t = Sample({3, 5});
  const rlhf::v1::Tensor proto = Encoded(t);
  EXPECT_EQ(proto.dtype(), GetParam().wire);
  EXPECT_THAT(proto.shape(), ::testing::ElementsAre(3, 5));
  EXPECT_EQ(static_cast<int64_t>(proto.data().size()), 15 * GetParam().size);
  ExpectSameTensor(RoundTrip(t), t);
}

TEST_P(CodecDTypeTest, RoundTripsNonContiguous) {
  const torch::Tensor base = Sample({4, 6, 3});
  const torch::Tensor transposed = base.transpose(0, 2);
  const torch::Tensor strided =
      base.index({torch::indexing::Slice(0, torch::indexing::None, 2), torch::indexing::Slice(),
                  torch::indexing::Slice(1, 3)});
  const torch::Tensor expanded = Sample({1, 3}).expand({4, 3});
  for (const torch::Tensor& t : {transposed, strided, expanded}) {
    ASSERT_FALSE(t.is_contiguous());
    ExpectSameTensor(RoundTrip(t), t);
  }
}

TEST_P(CodecDTypeTest, RoundTripsScalarAndEmpty) {
  const torch::Tensor scalar = Sample({}).reshape({});
  ASSERT_EQ(scalar.dim(), 0);
  const rlhf::v1::Tensor proto = Encoded(scalar);
  EXPECT_EQ(proto.shape_size(), 0);
  EXPECT_EQ(static_cast<int64_t>(proto.data().size()), GetParam().size);
  ExpectSameTensor(RoundTrip(scalar), scalar);

  for (std::vector<int64_t> shape : {std::vector<int64_t>{0}, {2, 0, 5}}) {
    const torch::Tensor empty = torch::empty(shape, GetParam().torch);
    EXPECT_TRUE(Encoded(empty).data().empty());
    ExpectSameTensor(RoundTrip(empty), empty);
  }
}

INSTANTIATE_TEST_SUITE_P(AllWireDTypes, CodecDTypeTest,
                         ::testing::Values(DTypeCase{torch::kFloat32, rlhf::v1::DTYPE_FLOAT32, 4},
                                           DTypeCase{torch::kBFloat16, rlhf::v1::DTYPE_BFLOAT16, 2},
                                           DTypeCase{torch::kFloat16, rlhf::v1::DTYPE_FLOAT16, 2},
                                           DTypeCase{torch::kFloat64, rlhf::v1::DTYPE_FLOAT64, 8},
                                           DTypeCase{torch::kInt64, rlhf::v1::DTYPE_INT64, 8},
                                           DTypeCase{torch::kInt32, rlhf::v1::DTYPE_INT32, 4}),
                         [](const ::testing::TestParamInfo<DTypeCase>& info) {
                           return std::string(c10::toString(info.param.torch));
                         });

TEST(CodecTest, BytesAreLittleEndianRowMajor) {
  const rlhf::v1::Tensor f = Encoded(torch::tensor({1.0f, -2.0f}));
  EXPECT_EQ(f.data(), std::string("\x00\x00\x80\x3f\x00\x00\x00\xc0", 8));
  const rlhf::v1::Tensor i =
      Encoded(torch::tensor({0x01020304, 0x0a0b0c0d}, torch::kInt32).reshape({2, 1}));
  EXPECT_EQ(i.data(), "\x04\x03\x02\x01\x0d\x0c\x0b\x0a");
}

TEST(CodecTest, EncodeRejectsUnsupportedAndUndefined) {
  rlhf::v1::Tensor proto;
  absl::Status status = EncodeTensor(torch::zeros({2}, torch::kInt8), &proto);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("cannot be sent"));
  EXPECT_EQ(EncodeTensor(torch::zeros({2}, torch::kBool), &proto).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeTensor(torch::Tensor(), &proto).code(), absl::StatusCode::kInvalidArgument);
}

// Decodes `proto`, expects InvalidArgument and returns the message.
std::string DecodeError(const rlhf::v1::Tensor& proto) {
  absl::StatusOr<torch::Tensor> decoded = DecodeTensor(proto);
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(decoded.status().message());
}

rlhf::v1::Tensor Proto(int dtype, std::vector<int64_t> shape, size_t data_bytes) {
  rlhf::v1::Tensor proto;
  proto.set_dtype(static_cast<rlhf::v1::DType>(dtype));
  for (int64_t d : shape) proto.add_shape(d);
  proto.set_data(std::string(data_bytes, '\0'));
  return proto;
}

TEST(CodecTest, DecodeRejectsBadDType) {
  EXPECT_THAT(DecodeError(Proto(rlhf::v1::DTYPE_UNSPECIFIED, {1}, 4)),
              HasSubstr("DTYPE_UNSPECIFIED"));
  EXPECT_THAT(DecodeError(Proto(42, {1}, 4)), HasSubstr("unknown dtype 42"));
}

TEST(CodecTest, DecodeRejectsBadShape) {
  EXPECT_THAT(DecodeError(Proto(rlhf::v1::DTYPE_FLOAT32, {2, -1}, 0)),
              HasSubstr("negative dimension"));
  EXPECT_THAT(DecodeError(Proto(rlhf::v1::DTYPE_FLOAT32, {int64_t{1} << 40, int64_t{1} << 40}, 0)),
              HasSubstr("overflows"));
  // The element size alone pushes it over.
  EXPECT_THAT(DecodeError(Proto(rlhf::v1::DTYPE_INT64, {int64_t{1} << 61}, 0)),
              HasSubstr("overflows"));
}

TEST(CodecTest, DecodeRejectsWrongDataSize) {
  EXPECT_THAT(DecodeError(Proto(rlhf::v1::DTYPE_FLOAT32, {2, 3}, 23)),
              HasSubstr("has 23 bytes, expected 24"));
  EXPECT_THAT(DecodeError(Proto(rlhf::v1::DTYPE_FLOAT64, {}, 0)),
              HasSubstr("has 0 bytes, expected 8"));
  EXPECT_THAT(DecodeError(Proto(rlhf::v1::DTYPE_INT32, {0}, 4)),
              HasSubstr("has 4 bytes, expected 0"));
}

TEST(CodecTest, WireByteSize) {
  EXPECT_EQ(*WireByteSize(rlhf::v1::DTYPE_BFLOAT16, {3, 7}), 42);
  EXPECT_EQ(*WireByteSize(rlhf::v1::DTYPE_INT64, {}), 8);
  EXPECT_EQ(*WireByteSize(rlhf::v1::DTYPE_INT64, {5, 0}), 0);
  EXPECT_FALSE(WireByteSize(rlhf::v1::DTYPE_UNSPECIFIED, {1}).ok());
}

TEST(CodecTest, CheckTensorAcceptsMatchesAndWildcards) {
  const torch::Tensor t = torch::zeros({2, 3}, torch::kInt64);
  EXPECT_TRUE(CheckTensor(t, torch::kInt64, {2, 3}, "tokens").ok());
  EXPECT_TRUE(CheckTensor(t, torch::kInt64, {-1, 3}, "tokens").ok());
  EXPECT_TRUE(CheckTensor(t, torch::kInt64, {-1, -1}, "tokens").ok());
  EXPECT_TRUE(CheckTensor(torch::zeros({}), torch::kFloat32, {}, "scalar").ok());
}

TEST(CodecTest, CheckTensorRejectsMismatches) {
  const torch::Tensor t = torch::zeros({2, 4}, torch::kInt64);
  absl::Status status = CheckTensor(t, torch::kFloat32, {-1, 4}, "LogProbsRequest.tokens");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "LogProbsRequest.tokens: expected float32 [-1, 4], got int64 [2, 4]");
  EXPECT_FALSE(CheckTensor(t, torch::kInt64, {-1, 3}, "x").ok());
  EXPECT_FALSE(CheckTensor(t, torch::kInt64, {2, 4, 1}, "x").ok());
  EXPECT_FALSE(CheckTensor(t, torch::kInt64, {-1}, "x").ok());
  EXPECT_THAT(std::string(CheckTensor(torch::Tensor(), torch::kInt64, {2}, "x").message()),
              HasSubstr("got none"));
}

}  // namespace
}  // namespace rlhf::codec
