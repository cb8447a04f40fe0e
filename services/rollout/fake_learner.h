// A fake rlhf.v1.Learner for the rollout worker's tests: a prompt pool, published weight
// versions (streamed with the real WeightChunker), acks with fault injection, and a record of
// everything it received. Answers the contract's way: empty leases when the pool is empty,
// DUPLICATE for an id it already has, NOT_FOUND for an unknown version.
//
// Thread-safe.
#ifndef RLHF_SERVICES_ROLLOUT_FAKE_LEARNER_H_
#define RLHF_SERVICES_ROLLOUT_FAKE_LEARNER_H_

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/codec/weight_chunks.h"
#include "rlhf/v1/services.grpc.pb.h"

namespace rlhf::rollout::testing {

class FakeLearner final : public rlhf::v1::Learner::CallbackService {
 public:
  // Every lease carries `sampling` with seed = sampling.seed + 100 * (lease number).
  explicit FakeLearner(rlhf::v1::SamplingParams sampling) : sampling_(std::move(sampling)) {}

  void AddPrompts(const std::vector<rlhf::v1::Prompt>& prompts) ABSL_LOCKS_EXCLUDED(mu_);
  // Publishes `tensors` as `version`; leases granted from now on carry it.
  void Publish(int64_t version, codec::NamedTensors tensors) ABSL_LOCKS_EXCLUDED(mu_);
  // While not OK, GetWeights answers with this status.
  void SetWeightsError(::grpc::Status status) ABSL_LOCKS_EXCLUDED(mu_);
  // Push stream number `stream` (0-based, in the order streams open) takes `after`
  // trajectories (keeping them all, as a learner that queued them), acks only the first
  // `acked`, stops reading and ends with UNAVAILABLE.
  void FailStream(int stream, int after, int acked) ABSL_LOCKS_EXCLUDED(mu_);
  // When off, trajectories are kept but not acked.
  void SetAcking(bool on) ABSL_LOCKS_EXCLUDED(mu_);

  struct Received {
    rlhf::v1::Trajectory trajectory;
    int stream = 0;
    bool acked = false;
  };
  struct Lease {
    std::vector<rlhf::v1::Prompt> prompts;
    uint64_t seed = 0;
  };
  std::vector<Received> received() const ABSL_LOCKS_EXCLUDED(mu_);
  // Kept trajectories by id (the first copy).
  std::map<std::string, rlhf::v1::Trajectory> kept() const ABSL_LOCKS_EXCLUDED(mu_);
  std::map<std::string, Lease> leases() const ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<std::string> returned_leases() const ABSL_LOCKS_EXCLUDED(mu_);
  int streams() const ABSL_LOCKS_EXCLUDED(mu_);

  // Wait until that many trajectories are kept / received / leases returned. False on timeout.
  bool AwaitKept(size_t n, absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_);
  bool AwaitReceived(size_t n, absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_);
  bool AwaitReturned(size_t n, absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_);

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

 private:
  class PushReactor;
  struct Fault {
    int after = 0;
    int acked = 0;
  };

  // Keeps `t` as received on `stream` (its `index`-th trajectory there). Returns the ack to
  // send, if any, and whether the stream must fail now.
  bool OnTrajectory(const rlhf::v1::Trajectory& t, int stream, int index, rlhf::v1::Ack* ack)
      ABSL_LOCKS_EXCLUDED(mu_);

  const rlhf::v1::SamplingParams sampling_;

  mutable absl::Mutex mu_;
  std::deque<rlhf::v1::Prompt> pool_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, codec::NamedTensors> versions_ ABSL_GUARDED_BY(mu_);
  ::grpc::Status weights_error_ ABSL_GUARDED_BY(mu_);
  std::map<int, Fault> faults_ ABSL_GUARDED_BY(mu_);
  bool acking_ ABSL_GUARDED_BY(mu_) = true;
  int next_lease_ ABSL_GUARDED_BY(mu_) = 0;
  int next_stream_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, Lease> leases_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> returned_ ABSL_GUARDED_BY(mu_);
  std::vector<Received> received_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, rlhf::v1::Trajectory> kept_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rlhf::rollout::testing

#endif  // RLHF_SERVICES_ROLLOUT_FAKE_LEARNER_H_
