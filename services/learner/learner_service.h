// The learner's gRPC face (rlhf.v1.Learner; contract in proto/rlhf/v1/services.proto): prompt
// leases, the trajectory streams, and the published weights. Training itself runs elsewhere
// (services/learner/learner.h); this class only moves data between the wire and the
// PromptPool, TrajectoryQueue and WeightStore it is given.
//
// Protocol of PushTrajectories (one reactor per worker stream; reactions never block):
//  1. The reactor keeps one read in flight. Each trajectory read is offered to the queue with
//     the newest published version; its verdict (ACCEPTED / DUPLICATE / INVALID / STALE) is
//     queued as an Ack, and the next read starts at once.
//  2. When the queue is full the trajectory is parked and the reactor stops reading: HTTP/2
//     flow control then pushes back on the worker. When the trainer frees room, the queue calls
//     OnAccepted on the trainer's thread; the reactor queues the ACCEPTED ack and reads again.
//  3. Acks are written one at a time, in verdict order. An ACCEPTED trajectory completes its
//     prompt in the pool.
//  4. The worker's half-close ends the stream with OK once every ack is written; the queue's
//     Close() (the run is over) ends it with UNAVAILABLE; a cancelled stream drops its parked
//     trajectory (counted as cancelled; the worker still holds it, unacked, and re-sends it).
//
// GetWeights streams a published version's ready chunks one write at a time (they were cut and
// checksummed once, at publication). WatchVersion writes the newest version at once and then each new
// one (coalescing versions published while a write is in flight).
//
// Thread-safe.
#ifndef RLHF_SERVICES_LEARNER_LEARNER_SERVICE_H_
#define RLHF_SERVICES_LEARNER_LEARNER_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <deque>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "rlhf/v1/config.pb.h"
#include "rlhf/v1/services.grpc.pb.h"
#include "services/learner/learner_metrics.h"
#include "services/learner/prompt_pool.h"
#include "services/learner/trajectory_queue.h"
#include "services/learner/weight_store.h"

namespace rlhf::learner {

struct LearnerServiceOptions {
  /// Sampling settings handed out with every lease.
  rlhf::v1::SamplingConfig sampling;
  /// Base of the per-lease sampling seeds.
  uint64_t seed = 1;
  /// Most prompts in flight at once: outstanding in leases, queued, and in the batch being
  /// trained on (until TrajectoryQueue::ReleaseTaken). 0 = no limit.
  int64_t max_prompts_in_flight = 0;
  /// How long a lease waits for room (also capped by the caller's deadline less 250 ms:
  /// the learner serves waiting leases every 100 ms while it waits for data)
  /// before it is answered empty.
  absl::Duration max_lease_wait = absl::Seconds(2);
};

absl::Status Validate(const LearnerServiceOptions& options);

class LearnerService final : public rlhf::v1::Learner::CallbackService {
 public:
  // None of the pointers is owned; all must outlive the service (and the server running it).
  LearnerService(const LearnerServiceOptions& options, PromptPool* pool, TrajectoryQueue* queue,
                 WeightStore* weights, LearnerMetrics* metrics);

  ::grpc::ServerUnaryReactor* LeasePrompts(::grpc::CallbackServerContext* context,
                                           const rlhf::v1::LeasePromptsRequest* request,
                                           rlhf::v1::PromptLease* response) override;
  ::grpc::ServerUnaryReactor* ReturnLease(::grpc::CallbackServerContext* context,
                                          const rlhf::v1::ReturnLeaseRequest* request,
                                          rlhf::v1::ReturnLeaseResponse* response) override;
  ::grpc::ServerBidiReactor<rlhf::v1::Trajectory, rlhf::v1::Ack>* PushTrajectories(
      ::grpc::CallbackServerContext* context) override;
  ::grpc::ServerWriteReactor<rlhf::v1::WeightChunk>* GetWeights(
      ::grpc::CallbackServerContext* context, const rlhf::v1::GetWeightsRequest* request) override;
  ::grpc::ServerWriteReactor<rlhf::v1::PolicyVersion>* WatchVersion(
      ::grpc::CallbackServerContext* context,
      const rlhf::v1::WatchVersionRequest* request) override;

  // Answers the waiting leases in order while the gate has room, and the overdue ones (or all,
  // after Close) with an empty lease. The learner calls it when it frees room (a step is
  // published) and periodically while it waits for data, so that deadlines are kept.
  void ServeWaitingLeases() ABSL_LOCKS_EXCLUDED(wait_mu_);

  // The run is ending: waiting and later gated leases are answered empty at once. Call before
  // shutting the server down (its Shutdown waits for unfinished calls).
  void Close() ABSL_LOCKS_EXCLUDED(wait_mu_);

  // Called by the push reactors.
  PromptPool& pool() { return *pool_; }
  TrajectoryQueue& queue() { return *queue_; }
  WeightStore& weights() { return *weights_; }
  LearnerMetrics& metrics() { return *metrics_; }

 private:
  // A LeasePrompts call waiting for room under max_prompts_in_flight.
  struct WaitingLease {
    ::grpc::ServerUnaryReactor* reactor;
    const rlhf::v1::LeasePromptsRequest* request;
    rlhf::v1::PromptLease* response;
    absl::Time deadline;
  };
  // Leases prompts from the pool into `response`; returns the status to finish the call with.
  ::grpc::Status FillLease(const rlhf::v1::LeasePromptsRequest& request,
                           rlhf::v1::PromptLease* response);

  const LearnerServiceOptions options_;
  PromptPool* const pool_;
  TrajectoryQueue* const queue_;
  WeightStore* const weights_;
  LearnerMetrics* const metrics_;
  std::atomic<uint64_t> leases_{0};
  absl::Mutex wait_mu_;
  std::deque<WaitingLease> waiting_ ABSL_GUARDED_BY(wait_mu_);
  bool closed_ ABSL_GUARDED_BY(wait_mu_) = false;
};

}  // namespace rlhf::learner

#endif  // RLHF_SERVICES_LEARNER_LEARNER_SERVICE_H_
