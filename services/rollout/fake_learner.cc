#include "services/rollout/fake_learner.h"

#include <memory>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"

namespace rlhf::rollout::testing {

using rlhf::v1::Ack;
using rlhf::v1::Trajectory;

// One push stream: reads trajectories one at a time, writes acks one at a time (queued), and
// finishes when the worker half-closes or a fault says so, after the queued acks are written.
class FakeLearner::PushReactor : public ::grpc::ServerBidiReactor<Trajectory, Ack> {
 public:
  PushReactor(FakeLearner* owner, int stream) : owner_(owner), stream_(stream) { StartRead(&in_); }

  void OnReadDone(bool ok) override {
    if (!ok) {  // half-close or cancellation
      FinishAfterWrites(::grpc::Status::OK);
      return;
    }
    Ack ack;
    const bool fail = owner_->OnTrajectory(in_, stream_, index_++, &ack);
    if (!ack.trajectory_id().empty()) Write(std::move(ack));
    if (fail) {
      FinishAfterWrites(::grpc::Status(::grpc::StatusCode::UNAVAILABLE, "injected stream failure"));
    } else {
      StartRead(&in_);
    }
  }

  void OnWriteDone(bool ok) override {
    std::optional<Ack> next;
    std::optional<::grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) pending_.clear();
      if (!pending_.empty()) {
        next = std::move(pending_.front());
        pending_.pop_front();
        writing_ = true;
      } else if (finish_status_.has_value() && !finished_) {
        finished_ = true;
        finish = finish_status_;
      }
    }
    if (next.has_value()) {
      out_ = std::move(*next);
      StartWrite(&out_);
    } else if (finish.has_value()) {
      Finish(*finish);
    }
  }

  void OnDone() override { delete this; }

 private:
  void Write(Ack ack) {
    {
      absl::MutexLock lock(&mu_);
      if (writing_) {
        pending_.push_back(std::move(ack));
        return;
      }
      writing_ = true;
    }
    out_ = std::move(ack);
    StartWrite(&out_);
  }

  // Finishes now when no write is in flight, else after the queued acks.
  void FinishAfterWrites(::grpc::Status status) {
    {
      absl::MutexLock lock(&mu_);
      if (finish_status_.has_value()) return;
      finish_status_ = status;
      if (writing_) return;
      finished_ = true;
    }
    Finish(status);
  }

  FakeLearner* const owner_;
  const int stream_;
  int index_ = 0;  // the read side only
  Trajectory in_;
  Ack out_;  // the write in flight

  absl::Mutex mu_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<Ack> pending_ ABSL_GUARDED_BY(mu_);
  std::optional<::grpc::Status> finish_status_ ABSL_GUARDED_BY(mu_);
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

namespace {

// Streams the chunks of one version, one write at a time.
class WeightsReactor : public ::grpc::ServerWriteReactor<rlhf::v1::WeightChunk> {
 public:
  explicit WeightsReactor(std::unique_ptr<codec::WeightChunker> chunker)
      : chunker_(std::move(chunker)) {
    Next();
  }
  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(::grpc::Status(::grpc::StatusCode::CANCELLED, "write failed"));
      return;
    }
    Next();
  }
  void OnDone() override { delete this; }

 private:
  void Next() {
    if (chunker_->Done()) {
      Finish(::grpc::Status::OK);
      return;
    }
    absl::Status s = chunker_->Next(&chunk_);
    if (!s.ok()) {
      Finish(::grpc::Status(::grpc::StatusCode::INTERNAL, std::string(s.message())));
      return;
    }
    StartWrite(&chunk_);
  }
  std::unique_ptr<codec::WeightChunker> chunker_;
  rlhf::v1::WeightChunk chunk_;
};

::grpc::ServerWriteReactor<rlhf::v1::WeightChunk>* FailedWrite(::grpc::Status status) {
  class Failed : public ::grpc::ServerWriteReactor<rlhf::v1::WeightChunk> {
   public:
    explicit Failed(const ::grpc::Status& s) { Finish(s); }
    void OnDone() override { delete this; }
  };
  return new Failed(status);
}

}  // namespace

void FakeLearner::AddPrompts(const std::vector<rlhf::v1::Prompt>& prompts) {
  absl::MutexLock lock(&mu_);
  pool_.insert(pool_.end(), prompts.begin(), prompts.end());
}

void FakeLearner::Publish(int64_t version, codec::NamedTensors tensors) {
  absl::MutexLock lock(&mu_);
  versions_[version] = std::move(tensors);
}

void FakeLearner::SetWeightsError(::grpc::Status status) {
  absl::MutexLock lock(&mu_);
  weights_error_ = std::move(status);
}

void FakeLearner::FailStream(int stream, int after, int acked) {
  absl::MutexLock lock(&mu_);
  faults_[stream] = Fault{after, acked};
}

void FakeLearner::SetAcking(bool on) {
  absl::MutexLock lock(&mu_);
  acking_ = on;
}

std::vector<FakeLearner::Received> FakeLearner::received() const {
  absl::MutexLock lock(&mu_);
  return received_;
}

std::map<std::string, Trajectory> FakeLearner::kept() const {
  absl::MutexLock lock(&mu_);
  return kept_;
}

std::map<std::string, FakeLearner::Lease> FakeLearner::leases() const {
  absl::MutexLock lock(&mu_);
  return leases_;
}

std::vector<std::string> FakeLearner::returned_leases() const {
  absl::MutexLock lock(&mu_);
  return returned_;
}

int FakeLearner::streams() const {
  absl::MutexLock lock(&mu_);
  return next_stream_;
}

bool FakeLearner::AwaitKept(size_t n, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return kept_.size() >= n; };
  return mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
}

bool FakeLearner::AwaitReceived(size_t n, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return received_.size() >= n; };
  return mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
}

bool FakeLearner::AwaitReturned(size_t n, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return returned_.size() >= n; };
  return mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
}

bool FakeLearner::OnTrajectory(const Trajectory& t, int stream, int index, Ack* ack) {
  absl::MutexLock lock(&mu_);
  auto fault = faults_.find(stream);
  const bool faulty = fault != faults_.end();
  const bool acks = acking_ && (!faulty || index < fault->second.acked);
  received_.push_back(Received{t, stream, acks});
  const bool duplicate = !kept_.emplace(t.id(), t).second;
  if (acks) {
    ack->set_trajectory_id(t.id());
    ack->set_outcome(duplicate ? Ack::DUPLICATE : Ack::ACCEPTED);
  }
  return faulty && index + 1 >= fault->second.after;
}

::grpc::ServerUnaryReactor* FakeLearner::LeasePrompts(::grpc::CallbackServerContext* context,
                                                      const rlhf::v1::LeasePromptsRequest* request,
                                                      rlhf::v1::PromptLease* response) {
  absl::MutexLock lock(&mu_);
  if (!versions_.empty()) response->set_policy_version(versions_.rbegin()->first);
  Lease lease;
  while (!pool_.empty() && static_cast<int>(lease.prompts.size()) < request->max_prompts()) {
    lease.prompts.push_back(pool_.front());
    pool_.pop_front();
  }
  if (!lease.prompts.empty()) {
    const int number = next_lease_++;
    lease.seed = sampling_.seed() + 100 * number;
    response->set_lease_id(absl::StrCat("lease-", number));
    response->set_expires_in_seconds(60);
    *response->mutable_sampling() = sampling_;
    response->mutable_sampling()->set_seed(lease.seed);
    for (const auto& p : lease.prompts) *response->add_prompts() = p;
    leases_[response->lease_id()] = std::move(lease);
  }
  auto* reactor = context->DefaultReactor();
  reactor->Finish(::grpc::Status::OK);
  return reactor;
}

::grpc::ServerUnaryReactor* FakeLearner::ReturnLease(::grpc::CallbackServerContext* context,
                                                     const rlhf::v1::ReturnLeaseRequest* request,
                                                     rlhf::v1::ReturnLeaseResponse* response) {
  auto* reactor = context->DefaultReactor();
  absl::MutexLock lock(&mu_);
  auto lease = leases_.find(request->lease_id());
  if (lease == leases_.end()) {
    reactor->Finish(::grpc::Status(::grpc::StatusCode::NOT_FOUND, "unknown lease"));
    return reactor;
  }
  returned_.push_back(request->lease_id());
  const auto& prompts = lease->second.prompts;
  pool_.insert(pool_.begin(), prompts.begin(), prompts.end());
  response->set_returned_prompts(prompts.size());
  reactor->Finish(::grpc::Status::OK);
  return reactor;
}

::grpc::ServerBidiReactor<Trajectory, Ack>* FakeLearner::PushTrajectories(
    ::grpc::CallbackServerContext* /*context*/) {
  int stream;
  {
    absl::MutexLock lock(&mu_);
    stream = next_stream_++;
  }
  return new PushReactor(this, stream);
}

::grpc::ServerWriteReactor<rlhf::v1::WeightChunk>* FakeLearner::GetWeights(
    ::grpc::CallbackServerContext* /*context*/, const rlhf::v1::GetWeightsRequest* request) {
  absl::MutexLock lock(&mu_);
  if (!weights_error_.ok()) return FailedWrite(weights_error_);
  auto version = request->version() == 0 && !versions_.empty() ? std::prev(versions_.end())
                                                               : versions_.find(request->version());
  if (version == versions_.end()) {
    return FailedWrite(::grpc::Status(::grpc::StatusCode::NOT_FOUND, "no such version"));
  }
  auto chunker = codec::WeightChunker::Create(version->second, version->first,
                                              /*max_chunk_bytes=*/4096);
  if (!chunker.ok()) {
    return FailedWrite(::grpc::Status(::grpc::StatusCode::INTERNAL, "chunker"));
  }
  return new WeightsReactor(std::move(*chunker));
}

}  // namespace rlhf::rollout::testing
