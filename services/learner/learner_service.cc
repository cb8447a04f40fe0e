#include "services/learner/learner_service.h"

#include <algorithm>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/grpc/status_util.h"
#include "glog/logging.h"

namespace rlhf::learner {
namespace {

using ::grpc::Status;
using ::grpc::StatusCode;

// One worker's trajectory stream; see the protocol in the header.
class PushReactor final : public ::grpc::ServerBidiReactor<rlhf::v1::Trajectory, rlhf::v1::Ack>,
                          public TrajectoryQueue::Waiter {
 public:
  explicit PushReactor(LearnerService* service) : service_(service) {
    service_->metrics().push_streams.Increment();
    StartRead(&incoming_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the worker half-closed or the stream broke
      absl::MutexLock lock(&mu_);
      reads_done_ = true;
      MaybeFinishLocked(Status::OK);
      return;
    }
    const int64_t version = service_->weights().latest();
    const std::string lease_id = incoming_.lease_id();
    const int64_t prompt_index = incoming_.prompt_index();
    {
      // Recorded before Offer: a parked trajectory can be admitted (OnAccepted) before Offer
      // returns.
      absl::MutexLock lock(&mu_);
      parked_lease_ = lease_id;
      parked_prompt_ = prompt_index;
    }
    // The ledger metrics are synced by the learner's loop (every PopBatch wait, and after each
    // step), not here: per trajectory it took two more locks shared by every stream.
    auto offered = service_->queue().Offer(std::move(incoming_), version, this);
    {
      absl::MutexLock lock(&mu_);
      if (!offered.ok()) {  // the run is over
        reads_done_ = true;
        MaybeFinishLocked(grpc_util::ToGrpcStatus(offered.status()));
        return;
      }
      if (offered->blocked) return;  // OnAccepted resumes reading
      if (offered->ack.outcome() != rlhf::v1::Ack::ACCEPTED) {
        AckAndReadLocked(offered->ack);
        return;
      }
      service_->pool().Complete(lease_id, prompt_index);
      ++awaiting_journal_;  // keeps the stream from finishing under the callback
    }
    // The ack promises what the journal's sync setting says (journal_sync): sent once the
    // acceptance is on disk, without blocking this thread on the disk.
    service_->queue().WhenJournaled([this, ack = std::move(offered->ack)] {
      absl::MutexLock lock(&mu_);
      --awaiting_journal_;
      AckAndReadLocked(ack);
      MaybeFinishLocked(deferred_status_);  // a stream that broke meanwhile finishes now
    });
  }

  // A parked trajectory was accepted (on the trainer's thread).
  void OnAccepted(const rlhf::v1::Ack& ack) override {
    absl::MutexLock lock(&mu_);
    service_->pool().Complete(parked_lease_, parked_prompt_);
    AckAndReadLocked(ack);
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      broken_ = true;
      MaybeFinishLocked(Status(StatusCode::UNAVAILABLE, "ack write failed"));
      return;
    }
    WriteNextLocked();
    MaybeFinishLocked(Status::OK);
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    broken_ = true;
    MaybeFinishLocked(Status::CANCELLED);
  }

  void OnDone() override {
    // After Cancel returns the queue never calls us again; a parked trajectory is dropped.
    service_->queue().Cancel(this);
    service_->metrics().SyncLedger(service_->queue().Ledger());
    service_->metrics().push_streams.Decrement();
    delete this;
  }

 private:
  void QueueAckLocked(const rlhf::v1::Ack& ack) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    acks_.push_back(ack);
    WriteNextLocked();
  }

  // Sends `ack` and reads the next trajectory, unless the stream is finishing.
  void AckAndReadLocked(const rlhf::v1::Ack& ack) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finishing_) return;
    QueueAckLocked(ack);
    StartRead(&incoming_);
  }

  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || acks_.empty() || broken_) return;
    writing_ = true;
    current_ = std::move(acks_.front());
    acks_.pop_front();
    StartWrite(&current_);
  }

  // Finishes once: at once when the stream is broken (pending writes fail fast), otherwise when
  // reads are done and every ack has been written.
  void MaybeFinishLocked(Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    if (awaiting_journal_ > 0) {  // the journal's callback finishes it
      if (!status.ok() && deferred_status_.ok()) deferred_status_ = status;
      return;
    }
    if (!broken_ && !(reads_done_ && !writing_ && acks_.empty())) return;
    if (!broken_ && !status.ok()) finish_status_ = status;
    finishing_ = true;
    finished_ = true;
    Finish(broken_ ? status : finish_status_);
  }

  LearnerService* const service_;
  rlhf::v1::Trajectory incoming_;  // the read buffer; one read in flight
  // Lease and prompt of the trajectory last offered: OnAccepted completes them.
  std::string parked_lease_ ABSL_GUARDED_BY(mu_);
  int64_t parked_prompt_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Mutex mu_;
  std::deque<rlhf::v1::Ack> acks_ ABSL_GUARDED_BY(mu_);
  rlhf::v1::Ack current_ ABSL_GUARDED_BY(mu_);  // the write buffer; one write in flight
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  int awaiting_journal_ ABSL_GUARDED_BY(mu_) = 0;  // an ACCEPTED ack waiting for the journal
  Status deferred_status_ ABSL_GUARDED_BY(mu_);      // a finish it held up
  Status finish_status_ ABSL_GUARDED_BY(mu_);
};

// Streams one published version's ready chunks, one write in flight.
class WeightsReactor final : public ::grpc::ServerWriteReactor<rlhf::v1::WeightChunk> {
 public:
  WeightsReactor(std::shared_ptr<const PublishedVersion> version, LearnerMetrics* metrics)
      : version_(std::move(version)), metrics_(metrics) {
    StartWrite(&version_->chunks[0]);
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(Status(StatusCode::UNAVAILABLE, "weight stream broken"));
      return;
    }
    metrics_->weight_bytes_sent.Increment(
        static_cast<double>(version_->chunks[next_].data().size()));
    if (++next_ == version_->chunks.size()) {
      Finish(Status::OK);
      return;
    }
    StartWrite(&version_->chunks[next_]);
  }

  void OnDone() override { delete this; }

 private:
  const std::shared_ptr<const PublishedVersion> version_;  // keeps the chunks alive
  LearnerMetrics* const metrics_;
  size_t next_ = 0;  // the chunk being written
};

// Tells one watcher about new versions.
class WatchReactor final : public ::grpc::ServerWriteReactor<rlhf::v1::PolicyVersion>,
                           public WeightStore::Watcher {
 public:
  explicit WatchReactor(WeightStore* store) : store_(store) {
    auto [version, bytes] = store_->AddWatcher(this);
    if (version >= 0) OnPublished(version, bytes);
  }

  void OnPublished(int64_t version, int64_t total_bytes) override {
    absl::MutexLock lock(&mu_);
    pending_.set_version(version);
    pending_.set_total_bytes(total_bytes);
    has_pending_ = true;
    WriteLocked();
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      FinishLocked(Status(StatusCode::UNAVAILABLE, "version stream broken"));
      return;
    }
    WriteLocked();
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    FinishLocked(Status::CANCELLED);
  }

  void OnDone() override {
    store_->RemoveWatcher(this);
    delete this;
  }

 private:
  void WriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || !has_pending_ || finished_) return;
    current_ = pending_;
    has_pending_ = false;
    writing_ = true;
    StartWrite(&current_);
  }

  void FinishLocked(Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    Finish(status);
  }

  WeightStore* const store_;
  absl::Mutex mu_;
  rlhf::v1::PolicyVersion pending_ ABSL_GUARDED_BY(mu_);
  rlhf::v1::PolicyVersion current_ ABSL_GUARDED_BY(mu_);
  bool has_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

template <typename Response>
class ErrorWriter final : public ::grpc::ServerWriteReactor<Response> {
 public:
  explicit ErrorWriter(const absl::Status& status) {
    this->Finish(grpc_util::ToGrpcStatus(status));
  }
  void OnDone() override { delete this; }
};

}  // namespace

absl::Status Validate(const LearnerServiceOptions& options) {
  if (!(options.sampling.temperature() >= 0)) {
    return absl::InvalidArgumentError("sampling.temperature must be >= 0");
  }
  if (options.sampling.max_new_tokens() <= 0) {
    return absl::InvalidArgumentError("sampling.max_new_tokens must be > 0");
  }
  if (options.max_lease_wait <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("max_lease_wait must be > 0");
  }
  return absl::OkStatus();
}

LearnerService::LearnerService(const LearnerServiceOptions& options, PromptPool* pool,
                               TrajectoryQueue* queue, WeightStore* weights,
                               LearnerMetrics* metrics)
    : options_(options), pool_(pool), queue_(queue), weights_(weights), metrics_(metrics) {}

::grpc::ServerUnaryReactor* LearnerService::LeasePrompts(
    ::grpc::CallbackServerContext* context, const rlhf::v1::LeasePromptsRequest* request,
    rlhf::v1::PromptLease* response) {
  auto* reactor = context->DefaultReactor();
  if (request->max_prompts() <= 0 || request->max_prompts() > pool_->max_lease_prompts()) {
    reactor->Finish(Status(StatusCode::INVALID_ARGUMENT,
                           absl::StrCat("max_prompts must be in [1, ", pool_->max_lease_prompts(),
                                        "] (limits.max_batch), got ", request->max_prompts())));
    return reactor;
  }
  if (const int size = pool_->LeaseSize(request->max_prompts());
      options_.max_prompts_in_flight > 0 && size > options_.max_prompts_in_flight) {
    // Such a lease could never find room: it would be answered empty forever.
    reactor->Finish(Status(
        StatusCode::INVALID_ARGUMENT,
        absl::StrCat("max_prompts ", request->max_prompts(), " (a lease of ", size,
                     " prompts) exceeds the learner's max_prompts_in_flight of ",
                     options_.max_prompts_in_flight)));
    return reactor;
  }
  if (options_.max_prompts_in_flight <= 0) {
    reactor->Finish(FillLease(*request, response));
    return reactor;
  }
  // Gated: this lease joins the line, which is served in order as room frees up.
  absl::Time deadline = absl::Now() + options_.max_lease_wait;
  deadline = std::min(deadline, absl::FromChrono(context->deadline()) - absl::Milliseconds(250));
  {
    absl::MutexLock lock(&wait_mu_);
    waiting_.push_back(WaitingLease{reactor, request, response, deadline});
  }
  ServeWaitingLeases();
  return reactor;
}

void LearnerService::ServeWaitingLeases() {
  std::vector<std::pair<::grpc::ServerUnaryReactor*, Status>> answers;  // finished unlocked
  {
    absl::MutexLock lock(&wait_mu_);
    if (waiting_.empty()) return;
    if (!closed_) pool_->Expire();  // a dead worker's lease frees up
    int64_t in_flight = pool_->Stats().outstanding + queue_->QueuedOrTaken();
    const absl::Time now = absl::Now();
    while (!waiting_.empty()) {
      const WaitingLease& w = waiting_.front();
      const bool room =
          in_flight + pool_->LeaseSize(w.request->max_prompts()) <= options_.max_prompts_in_flight;
      if (closed_ || !room) {
        if (!closed_ && now < w.deadline) break;      // FIFO: later ones wait behind it
        answers.emplace_back(w.reactor, Status::OK);  // empty: ask again (or the run is ending)
      } else {
        // Leased under the lock, so the next one's count includes these prompts.
        answers.emplace_back(w.reactor, FillLease(*w.request, w.response));
        in_flight = pool_->Stats().outstanding + queue_->QueuedOrTaken();
      }
      waiting_.pop_front();
    }
  }
  for (auto& [reactor, status] : answers) reactor->Finish(status);
}

void LearnerService::Close() {
  {
    absl::MutexLock lock(&wait_mu_);
    closed_ = true;
  }
  ServeWaitingLeases();
}

Status LearnerService::FillLease(const rlhf::v1::LeasePromptsRequest& request,
                                 rlhf::v1::PromptLease* response) {
  auto lease = pool_->Lease(request.worker_id(), request.max_prompts());
  if (!lease.ok()) {
    // A closed pool means the run is finishing: an empty lease tells the worker to wait.
    if (absl::IsFailedPrecondition(lease.status())) return Status::OK;
    return grpc_util::ToGrpcStatus(lease.status());
  }
  *response = std::move(*lease);
  response->set_policy_version(weights_->latest());
  rlhf::v1::SamplingParams* s = response->mutable_sampling();
  s->set_temperature(static_cast<float>(options_.sampling.temperature()));
  s->set_top_k(options_.sampling.top_k());
  s->set_top_p(static_cast<float>(options_.sampling.top_p()));
  s->set_max_new_tokens(options_.sampling.max_new_tokens());
  // Distinct seeds per lease (prompt i uses seed + i), so re-issued prompts get fresh samples.
  s->set_seed(options_.seed * 0x9E3779B97F4A7C15ULL + (leases_.fetch_add(1) << 16));
  metrics_->SyncPrompts(pool_->Stats());
  return Status::OK;
}

::grpc::ServerUnaryReactor* LearnerService::ReturnLease(::grpc::CallbackServerContext* context,
                                                        const rlhf::v1::ReturnLeaseRequest* request,
                                                        rlhf::v1::ReturnLeaseResponse* response) {
  auto* reactor = context->DefaultReactor();
  auto returned = pool_->Return(request->lease_id());
  if (!returned.ok()) {
    reactor->Finish(grpc_util::ToGrpcStatus(returned.status()));
    return reactor;
  }
  response->set_returned_prompts(*returned);
  metrics_->SyncPrompts(pool_->Stats());
  reactor->Finish(Status::OK);
  ServeWaitingLeases();  // the returned prompts are room for a waiting lease
  return reactor;
}

::grpc::ServerBidiReactor<rlhf::v1::Trajectory, rlhf::v1::Ack>* LearnerService::PushTrajectories(
    ::grpc::CallbackServerContext* /*context*/) {
  return new PushReactor(this);
}

::grpc::ServerWriteReactor<rlhf::v1::WeightChunk>* LearnerService::GetWeights(
    ::grpc::CallbackServerContext* /*context*/, const rlhf::v1::GetWeightsRequest* request) {
  auto version = weights_->Get(request->version());
  if (!version.ok()) return new ErrorWriter<rlhf::v1::WeightChunk>(version.status());
  return new WeightsReactor(*version, metrics_);  // a version has at least its last chunk
}

::grpc::ServerWriteReactor<rlhf::v1::PolicyVersion>* LearnerService::WatchVersion(
    ::grpc::CallbackServerContext* /*context*/, const rlhf::v1::WatchVersionRequest* /*request*/) {
  return new WatchReactor(weights_);
}

}  // namespace rlhf::learner
