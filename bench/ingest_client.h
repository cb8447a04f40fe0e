// The client side of bench/ingest_bench.cc: rollout workers as the learner sees them. Each
// leases prompts over LeasePrompts, then pushes trajectories answering them, one
// PushTrajectories stream per worker and phase (callback API, one write in flight, acks read
// as they come), as fast as the learner takes them or paced over all workers.
//
// Not thread-safe: one thread sets the workers up and runs the phases one after another.
#ifndef RLHF_BENCH_INGEST_CLIENT_H_
#define RLHF_BENCH_INGEST_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <google/protobuf/repeated_field.h>
#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rlhf/v1/services.grpc.pb.h"
#include "rlhf/v1/trajectory.pb.h"

namespace rlhf::bench {

// Token ids of the bench's trajectories and prompts are in [0, kIngestVocab).
constexpr int64_t kIngestVocab = 32000;

// The prompt tokens of every prompt index leased so far (the learner's pool is small and leases
// repeat its prompts): filled while leasing, read-only during the phases.
using PromptTokens = std::unordered_map<int64_t, google::protobuf::RepeatedField<int64_t>>;

// A lease as a worker keeps it.
struct LeasedPrompts {
  std::string lease_id;
  std::vector<int64_t> prompt_indexes;
};

// One worker: its leases and the trajectory it writes next (built in place, one write in
// flight).
struct Worker {
  std::string id;
  std::shared_ptr<::grpc::Channel> channel;
  std::unique_ptr<rlhf::v1::Learner::Stub> stub;
  const PromptTokens* prompt_tokens = nullptr;
  std::vector<LeasedPrompts> leases;  // prompts for every trajectory it will send
  rlhf::v1::Trajectory next;          // response, log-probs, reward fixed per worker
  int64_t sent = 0;                   // over all phases: the next sequence number
};

// Leases `total` prompts or more for `w` (in calls of `per_lease`), recording their tokens in
// `tokens`, which must outlive the worker's phases.
absl::Status Lease(Worker* w, int64_t total, int per_lease, PromptTokens* tokens);

// Fills the fields of w->next that stay the same from one trajectory to the next:
// `response_tokens` random token ids with behaviour and reference log-probs, a reward, the
// worker id, policy_version 0.
void InitTrajectory(Worker* w, int response_tokens, uint64_t seed);

// What one phase sent and got back, over all its streams.
struct PhaseResult {
  int64_t written = 0;   // trajectories
  int64_t bytes = 0;     // their serialized size (gRPC framing not counted)
  int64_t accepted = 0;  // acks by outcome
  int64_t duplicate = 0;
  int64_t other = 0;   // INVALID, STALE or unknown
  double seconds = 0;  // from the first stream's start to the last stream's end
};

// Runs one stream per worker with `per_stream` trajectories each, at most `rate` per second
// over all streams (0: no limit), and waits for all of them. Returns the first stream's error
// when a stream fails. REQUIRES: each worker has leases for w.sent + per_stream trajectories.
absl::StatusOr<PhaseResult> RunPhase(std::vector<Worker>& workers, int64_t per_stream,
                                     int per_lease, double rate);

}  // namespace rlhf::bench

#endif  // RLHF_BENCH_INGEST_CLIENT_H_
