#include "common/codec/weight_chunks.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/codec/crc32c.h"
#include "common/codec/tensor_codec.h"
#include "common/status/status_macros.h"
#include "common/status/exception.h"

namespace rlhf::codec {
namespace {

// Returns the byte size of a tensor whose dtype the wire carries.
int64_t ByteSize(const torch::Tensor& tensor) { return tensor.numel() * tensor.element_size(); }

absl::Status Prefixed(const std::string& prefix, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(prefix, ": ", status.message()));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// WeightChunker

absl::StatusOr<std::unique_ptr<WeightChunker>> WeightChunker::Create(NamedTensors tensors,
                                                                     int64_t version,
                                                                     int64_t max_chunk_bytes) {
  if (max_chunk_bytes <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_chunk_bytes must be positive, got ", max_chunk_bytes));
  }
  std::set<std::string> names;
  int64_t total_bytes = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name.empty()) return absl::InvalidArgumentError("a tensor has an empty name");
    if (!names.insert(name).second) {
      return absl::InvalidArgumentError(absl::StrCat("duplicate tensor name '", name, "'"));
    }
    if (!tensor.defined()) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' is undefined"));
    }
    absl::Status dtype = ToWireDType(tensor.scalar_type()).status();
    if (!dtype.ok()) return Prefixed(absl::StrCat("tensor '", name, "'"), dtype);
    total_bytes += ByteSize(tensor);
  }
  return std::unique_ptr<WeightChunker>(
      new WeightChunker(std::move(tensors), version, max_chunk_bytes, total_bytes));
}

WeightChunker::WeightChunker(NamedTensors tensors, int64_t version, int64_t max_chunk_bytes,
                             int64_t total_bytes)
    : tensors_(std::move(tensors)),
      version_(version),
      max_chunk_bytes_(max_chunk_bytes),
      total_bytes_(total_bytes) {}

absl::Status WeightChunker::Next(rlhf::v1::WeightChunk* chunk) {
  chunk->Clear();
  chunk->set_version(version_);
  if (index_ < tensors_.size()) {
    const auto& [name, tensor] = tensors_[index_];
    if (!current_.defined()) {
      absl::StatusOr<torch::Tensor> cpu = ToContiguousCpu(tensor);
      if (!cpu.ok()) {
        done_ = true;
        return Prefixed(absl::StrCat("tensor '", name, "'"), cpu.status());
      }
      current_ = *std::move(cpu);
      chunk->set_name(name);
      chunk->set_dtype(*ToWireDType(current_.scalar_type()));  // Checked in Create.
      for (int64_t dim : current_.sizes()) chunk->add_shape(dim);
    }
    const int64_t size = ByteSize(current_);
    const int64_t n = std::min(max_chunk_bytes_, size - offset_);
    chunk->set_offset(offset_);
    if (n > 0) {
      chunk->set_data(static_cast<const char*>(current_.data_ptr()) + offset_, n);
    }
    chunk->set_crc32c(Crc32c(chunk->data()));
    offset_ += n;
    if (offset_ < size) return absl::OkStatus();
    ++index_;
    offset_ = 0;
    current_ = torch::Tensor();
  }
  if (index_ == tensors_.size()) {
    chunk->set_last(true);
    chunk->set_total_tensors(static_cast<int64_t>(tensors_.size()));
    chunk->set_total_bytes(total_bytes_);
    done_ = true;
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// WeightAssembler

WeightAssembler::WeightAssembler(int64_t max_total_bytes) : max_total_bytes_(max_total_bytes) {}

absl::Status WeightAssembler::Add(const rlhf::v1::WeightChunk& chunk) {
  if (!error_.ok()) return error_;
  error_ = AddImpl(chunk);
  return error_;
}

absl::Status WeightAssembler::AddImpl(const rlhf::v1::WeightChunk& chunk) {
  if (done_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "chunk (offset ", chunk.offset(), ") after the last chunk of version ", version_));
  }
  if (version_ == -1) version_ = chunk.version();
  if (chunk.version() != version_) {
    return absl::InvalidArgumentError(absl::StrCat("version changed mid-stream from ", version_,
                                                   " to ", chunk.version(), " at ", Where()));
  }
  const uint32_t crc = Crc32c(chunk.data());
  if (crc != chunk.crc32c()) {
    const std::string where =
        chunk.name().empty() ? Where() : absl::StrCat("tensor '", chunk.name(), "'");
    return absl::DataLossError(absl::StrCat("CRC32C mismatch in the chunk at offset ",
                                            chunk.offset(), " of ", where, ": computed ", crc,
                                            ", chunk says ", chunk.crc32c()));
  }
  if (!chunk.name().empty()) {
    RLHF_RETURN_IF_ERROR(StartTensor(chunk));
  } else if (!tensors_.empty()) {
    RLHF_RETURN_IF_ERROR(AppendData(chunk));
  } else if (!chunk.last() || !chunk.data().empty() || chunk.offset() != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("chunk at offset ", chunk.offset(),
                     " belongs to no tensor: the first chunk of a tensor must carry its name"));
  }
  if (chunk.last()) {
    RLHF_RETURN_IF_ERROR(CheckLast(chunk));
    done_ = true;
  }
  return absl::OkStatus();
}

absl::Status WeightAssembler::StartTensor(const rlhf::v1::WeightChunk& chunk) {
  const std::string what = absl::StrCat("tensor '", chunk.name(), "'");
  if (received_ != expected_) {
    return absl::InvalidArgumentError(absl::StrCat(Where(), " is incomplete (", received_, " of ",
                                                   expected_, " bytes) when ", what, " starts"));
  }
  if (names_.count(chunk.name()) > 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is sent twice"));
  }
  if (chunk.offset() != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("the first chunk of ", what, " has offset ", chunk.offset(), ", expected 0"));
  }
  const absl::Span<const int64_t> shape(chunk.shape().data(), chunk.shape_size());
  absl::StatusOr<int64_t> size = WireByteSize(chunk.dtype(), shape);
  if (!size.ok()) return Prefixed(what, size.status());
  if (*size > max_total_bytes_ - declared_total_) {
    return absl::InvalidArgumentError(absl::StrCat(what, " (", *size, " bytes) takes version ",
                                                   version_, " past the limit of ",
                                                   max_total_bytes_, " bytes"));
  }
  torch::Tensor tensor;
  try {
    tensor = torch::empty(c10::IntArrayRef(shape.data(), shape.size()),
                          torch::TensorOptions().dtype(*FromWireDType(chunk.dtype())));
  } catch (...) {
    return status::CurrentExceptionToStatus(
        absl::StrCat(what, ": allocating ", *size, " bytes failed"),
        absl::StatusCode::kResourceExhausted);
  }
  tensors_.emplace_back(chunk.name(), std::move(tensor));
  names_.insert(chunk.name());
  declared_total_ += *size;
  expected_ = *size;
  received_ = 0;
  return AppendData(chunk);
}

absl::Status WeightAssembler::AppendData(const rlhf::v1::WeightChunk& chunk) {
  if (received_ == expected_ && chunk.offset() != received_) {
    return absl::InvalidArgumentError(absl::StrCat(
        Where(), " is complete (", expected_, " bytes): a chunk without a name continues no ",
        "tensor (the first chunk of each tensor carries its name); this one has offset ",
        chunk.offset()));
  }
  if (chunk.offset() != received_) {
    return absl::InvalidArgumentError(absl::StrCat(Where(), ": chunk at offset ", chunk.offset(),
                                                   ", expected offset ", received_,
                                                   " (chunks out of order or missing)"));
  }
  const int64_t n = static_cast<int64_t>(chunk.data().size());
  if (n > expected_ - received_) {
    return absl::InvalidArgumentError(absl::StrCat(Where(), ": chunk [", received_, ", ",
                                                   received_ + n, ") runs past the tensor's ",
                                                   expected_, " bytes"));
  }
  if (n > 0) {
    std::memcpy(static_cast<char*>(tensors_.back().second.data_ptr()) + received_,
                chunk.data().data(), n);
  }
  received_ += n;
  received_total_ += n;
  return absl::OkStatus();
}

absl::Status WeightAssembler::CheckLast(const rlhf::v1::WeightChunk& chunk) const {
  if (received_ != expected_) {
    return absl::InvalidArgumentError(absl::StrCat(Where(), " is incomplete at the last chunk (",
                                                   received_, " of ", expected_, " bytes)"));
  }
  const auto count = static_cast<int64_t>(tensors_.size());
  if (chunk.total_tensors() != count || chunk.total_bytes() != received_total_) {
    return absl::InvalidArgumentError(
        absl::StrCat("last chunk of version ", version_, " (", Where(), ") says ",
                     chunk.total_tensors(), " tensors and ", chunk.total_bytes(),
                     " bytes, received ", count, " tensors and ", received_total_, " bytes"));
  }
  return absl::OkStatus();
}

std::string WeightAssembler::Where() const {
  if (tensors_.empty()) return absl::StrCat("version ", version_, " before any tensor");
  return absl::StrCat("tensor '", tensors_.back().first, "'");
}

absl::StatusOr<NamedTensors> WeightAssembler::Finish() {
  if (!error_.ok()) return error_;
  if (!done_) {
    error_ = absl::FailedPreconditionError(absl::StrCat(
        "weight stream of version ", version_, " ended before its last chunk: ", tensors_.size(),
        " tensors started, ", Where(), " has ", received_, " of ", expected_, " bytes"));
    return error_;
  }
  NamedTensors result = std::move(tensors_);
  error_ = absl::FailedPreconditionError("Finish() was already called");
  return result;
}

}  // namespace rlhf::codec
