// A policy version on the wire: the ordered, named tensors of a state dict cut into
// rlhf.v1.WeightChunk messages (see tensor.proto), and put back together on the other side.
//
// Stream layout, for tensors t_1..t_n of version v and a chunk limit of B bytes:
//   - every chunk carries `version` = v, `offset` (byte offset of `data` in its tensor), `data`
//     (at most B bytes) and `crc32c` = CRC32C(data);
//   - the first chunk of each tensor carries `name`, `dtype` and `shape` and has offset 0; the
//     later chunks of that tensor carry no name and continue at the next offset; a tensor of 0
//     bytes is one chunk with empty data;
//   - the final chunk has `last` = true, `total_tensors` = n and `total_bytes` = the sum of the
//     tensors' byte sizes; for n = 0 it is the only chunk (no name, no data).
#ifndef RLHF_COMMON_CODEC_WEIGHT_CHUNKS_H_
#define RLHF_COMMON_CODEC_WEIGHT_CHUNKS_H_

#include <torch/torch.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rlhf/v1/tensor.pb.h"

namespace rlhf::codec {

// Tensors with their names, in state-dict order.
using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// Produces the chunks of one version lazily, one at a time, so that a server can stream a model
// without holding its serialised form in memory (at most one tensor's contiguous CPU copy is
// alive, and none for tensors that already are contiguous on the CPU).
//
// Thread-compatible: one thread at a time.
class WeightChunker {
 public:
  // Returns a chunker over `tensors` (any device, any strides) for `version`, or
  // InvalidArgument for max_chunk_bytes <= 0, an empty or duplicate name, an undefined tensor
  // or a dtype the wire does not carry. The chunker shares the tensors' storage.
  // REQUIRES: the tensors are not modified until Done() (clone them if training goes on).
  static absl::StatusOr<std::unique_ptr<WeightChunker>> Create(NamedTensors tensors,
                                                               int64_t version,
                                                               int64_t max_chunk_bytes);

  WeightChunker(const WeightChunker&) = delete;
  WeightChunker& operator=(const WeightChunker&) = delete;

  // Returns true once the chunk with `last` set has been produced.
  bool Done() const { return done_; }

  // Replaces *chunk with the next chunk. Returns Internal when copying a tensor off its device
  // fails (the chunker is then done). REQUIRES: !Done(), chunk != nullptr.
  absl::Status Next(rlhf::v1::WeightChunk* chunk);

  // The sum of the tensors' byte sizes (the final chunk's total_bytes).
  int64_t total_bytes() const { return total_bytes_; }

 private:
  WeightChunker(NamedTensors tensors, int64_t version, int64_t max_chunk_bytes,
                int64_t total_bytes);

  // Constant after construction.
  const NamedTensors tensors_;
  const int64_t version_;
  const int64_t max_chunk_bytes_;
  const int64_t total_bytes_;

  // Position: tensor index, byte offset within it and its contiguous CPU form (undefined until
  // the tensor's first chunk).
  size_t index_ = 0;
  int64_t offset_ = 0;
  torch::Tensor current_;
  bool done_ = false;
};

// Consumes the chunks of one version in stream order and returns the tensors at the end. The
// first error is sticky: every later Add or Finish returns it again.
//
// Error codes: DataLoss for a CRC mismatch; FailedPrecondition for chunks after the last one
// and for Finish before it; InvalidArgument for any other malformed stream (version change,
// continuation chunk with no tensor started, offset out of order, data beyond the tensor's size,
// bad dtype/shape, duplicate name, incomplete tensor or wrong totals at `last`, more bytes than
// max_total_bytes). Messages name the tensor concerned.
//
// Thread-compatible: one thread at a time.
class WeightAssembler {
 public:
  // `max_total_bytes` bounds the sum of the declared tensor sizes, so that a bad peer cannot
  // make the receiver allocate without limit.
  explicit WeightAssembler(int64_t max_total_bytes = std::numeric_limits<int64_t>::max());

  WeightAssembler(const WeightAssembler&) = delete;
  WeightAssembler& operator=(const WeightAssembler&) = delete;

  // Verifies and consumes the next chunk; returns OK or the (sticky) error.
  absl::Status Add(const rlhf::v1::WeightChunk& chunk);

  // Returns true once a valid `last` chunk was accepted.
  bool done() const { return done_; }

  // The version of the stream (of its first chunk); -1 before any chunk.
  int64_t version() const { return version_; }

  // Returns the tensors (CPU, contiguous, in stream order) and leaves the assembler empty.
  // FailedPrecondition when the stream ended before its last chunk (e.g. a truncated stream);
  // the sticky error if Add failed.
  absl::StatusOr<NamedTensors> Finish();

 private:
  absl::Status AddImpl(const rlhf::v1::WeightChunk& chunk);
  absl::Status StartTensor(const rlhf::v1::WeightChunk& chunk);
  absl::Status AppendData(const rlhf::v1::WeightChunk& chunk);
  absl::Status CheckLast(const rlhf::v1::WeightChunk& chunk) const;
  // "tensor 'name'" for the tensor being received, or a description of the stream position.
  std::string Where() const;

  const int64_t max_total_bytes_;

  int64_t version_ = -1;
  NamedTensors tensors_;
  std::set<std::string> names_;
  // Bytes expected and received for tensors_.back().
  int64_t expected_ = 0;
  int64_t received_ = 0;
  // Sums over all tensors, of declared sizes and of received bytes.
  int64_t declared_total_ = 0;
  int64_t received_total_ = 0;
  bool done_ = false;
  absl::Status error_;
};

}  // namespace rlhf::codec

#endif  // RLHF_COMMON_CODEC_WEIGHT_CHUNKS_H_
