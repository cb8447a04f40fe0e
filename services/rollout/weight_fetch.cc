#include "services/rollout/weight_fetch.h"

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc/status_util.h"

namespace rlhf::rollout {
namespace {

absl::Status Malformed(const absl::Status& s) {
  if (absl::IsDataLoss(s)) return s;
  return absl::InvalidArgumentError(absl::StrCat("malformed weight stream: ", s.message()));
}

}  // namespace

absl::Status FetchWeights(rlhf::v1::Learner::StubInterface& learner, ::grpc::ClientContext* context,
                          int64_t version, int64_t max_bytes, prometheus::Counter* bytes_received,
                          codec::NamedTensors* tensors, int64_t* fetched) {
  rlhf::v1::GetWeightsRequest request;
  request.set_version(version);
  std::unique_ptr<::grpc::ClientReaderInterface<rlhf::v1::WeightChunk>> reader =
      learner.GetWeights(context, request);
  codec::WeightAssembler assembler(max_bytes);
  absl::Status assembled;
  rlhf::v1::WeightChunk chunk;
  while (reader->Read(&chunk)) {
    if (bytes_received != nullptr) bytes_received->Increment(chunk.data().size());
    if (assembled.ok()) {
      assembled = assembler.Add(chunk);
      if (!assembled.ok()) context->TryCancel();  // then read until the stream ends
    }
  }
  const absl::Status status = grpc_util::FromGrpcStatus(reader->Finish());
  if (!assembled.ok()) return Malformed(assembled);
  if (!status.ok()) return status;
  const int64_t received = assembler.version();
  absl::StatusOr<codec::NamedTensors> result = assembler.Finish();
  if (!result.ok()) return Malformed(result.status());
  if (version != 0 && received != version) {
    return absl::InvalidArgumentError(
        absl::StrCat("asked for policy version ", version, ", got ", received));
  }
  *tensors = std::move(*result);
  *fetched = received;
  return absl::OkStatus();
}

}  // namespace rlhf::rollout
