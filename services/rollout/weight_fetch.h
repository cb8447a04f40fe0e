// Reads one Learner.GetWeights stream into named tensors (the rollout worker's weight sync;
// the stream layout is common/codec/weight_chunks.h's).
#ifndef RLHF_SERVICES_ROLLOUT_WEIGHT_FETCH_H_
#define RLHF_SERVICES_ROLLOUT_WEIGHT_FETCH_H_

#include <grpcpp/grpcpp.h>
#include <prometheus/counter.h>

#include <cstdint>

#include "absl/status/status.h"
#include "common/codec/weight_chunks.h"
#include "rlhf/v1/services.grpc.pb.h"

namespace rlhf::rollout {

// Calls GetWeights(version) on `learner` with `context` (its deadline and cancellation are the
// caller's) and assembles the stream, accepting at most `max_bytes` of tensor data. On success
// fills *tensors and *fetched (the version received: the newest when `version` is 0). Adds
// every payload byte received to `bytes_received` (may be null).
// Errors: the call's status (FAILED_PRECONDITION / NOT_FOUND from the learner for a version it
// does not have, UNAVAILABLE, ...); DataLoss for a checksum mismatch; InvalidArgument for a
// malformed stream or another version than asked for. The assembler's own FailedPrecondition
// (a truncated stream) is reported as InvalidArgument so that it cannot read as "version gone".
absl::Status FetchWeights(rlhf::v1::Learner::StubInterface& learner, ::grpc::ClientContext* context,
                          int64_t version, int64_t max_bytes, prometheus::Counter* bytes_received,
                          codec::NamedTensors* tensors, int64_t* fetched);

}  // namespace rlhf::rollout

#endif  // RLHF_SERVICES_ROLLOUT_WEIGHT_FETCH_H_
