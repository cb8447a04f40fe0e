#include "services/rollout/trajectory_pusher.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc/status_util.h"
#include "common/logging/logging.h"
#include "services/rollout/backoff.h"

namespace rlhf::rollout {

TrajectoryPusher::TrajectoryPusher(const PusherOptions& options,
                                   std::shared_ptr<::grpc::Channel> channel, WorkerMetrics* metrics)
    : options_(options),
      channel_(std::move(channel)),
      stub_(rlhf::v1::Learner::NewStub(channel_)),
      metrics_(metrics) {}

TrajectoryPusher::~TrajectoryPusher() { Stop(absl::ZeroDuration()); }

void TrajectoryPusher::Start() {
  {
    absl::MutexLock lock(&mu_);
    thread_exited_ = false;
  }
  thread_ = std::thread([this] { Run(); });
}

bool TrajectoryPusher::HasRoom() const {
  return stopping_ || static_cast<int>(unacked_.size()) < options_.max_unacked;
}

bool TrajectoryPusher::AllAcked() const { return unacked_.empty(); }

bool TrajectoryPusher::WriterHasWork() const {
  return stopping_ || reader_done_ ||
         (!unacked_.empty() && unacked_.rbegin()->first >= next_to_send_);
}

absl::Status TrajectoryPusher::Push(rlhf::v1::Trajectory trajectory) {
  if (trajectory.id().empty()) return absl::InvalidArgumentError("trajectory without an id");
  absl::MutexLock lock(&mu_);
  if (!HasRoom()) {
    const absl::Time start = absl::Now();
    mu_.Await(absl::Condition(this, &TrajectoryPusher::HasRoom));
    metrics_->push_blocked_seconds.Increment(absl::ToDoubleSeconds(absl::Now() - start));
  }
  if (stopping_) return absl::CancelledError("the trajectory stream is stopping");
  if (!seq_by_id_.emplace(trajectory.id(), next_seq_).second) {
    return absl::InvalidArgumentError(
        absl::StrCat("trajectory '", trajectory.id(), "' is already waiting for its ack"));
  }
  unacked_.emplace(next_seq_++, Entry{std::move(trajectory)});
  stats_.unacked = unacked_.size();
  metrics_->unacked.Set(stats_.unacked);
  return absl::OkStatus();
}

bool TrajectoryPusher::WaitForAcks(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithDeadline(absl::Condition(this, &TrajectoryPusher::AllAcked), deadline);
}

PushStats TrajectoryPusher::Stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

void TrajectoryPusher::Stop(absl::Duration close_timeout) {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    if (!stopping_) {
      stopping_ = true;
      close_deadline_ = absl::Now() + close_timeout;
    }
    // Give the stream thread until the deadline to close gracefully; then cancel the stream,
    // which also ends a Write held by flow control or a stream still being opened.
    if (!mu_.AwaitWithDeadline(absl::Condition(&thread_exited_), close_deadline_) &&
        stream_context_ != nullptr) {
      stream_context_->TryCancel();
    }
  }
  if (thread_.joinable()) thread_.join();
  absl::MutexLock lock(&mu_);
  stopped_ = true;
  if (!unacked_.empty()) {
    LOG(WARNING) << "trajectory stream stopped with " << unacked_.size()
                 << " trajectories unacked; their leases will expire on the learner";
  }
}

void TrajectoryPusher::Run() {
  Backoff backoff(options_.initial_backoff, options_.max_backoff);
  int failures = 0;  // streams in a row that ended without an ack
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    bool acked_any = false;
    mu_.Unlock();
    const absl::Status ended = RunStream(&acked_any);
    mu_.Lock();
    if (stopping_) break;
    if (acked_any) {
      backoff.Reset();
      failures = 0;
    }
    ++failures;
    ++stats_.reconnects;
    metrics_->Retry("push").Increment();
    if ((failures & (failures - 1)) == 0) {  // 1st, 2nd, 4th, ... in a row
      LOG(WARNING) << "trajectory stream to the learner ended (" << ended << ") with "
                   << unacked_.size() << " unacked; reopening it (" << failures << " in a row)";
    }
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), backoff.Next());
  }
  thread_exited_ = true;
}

absl::Status TrajectoryPusher::RunStream(bool* acked_any) {
  ::grpc::ClientContext context;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::CancelledError("stopping");
    stream_context_ = &context;  // from here on Stop() may cancel it
    reader_done_ = false;
    acks_on_stream_ = 0;
    next_to_send_ = unacked_.empty() ? next_seq_ : unacked_.begin()->first;
  }
  std::unique_ptr<Stream> stream = stub_->PushTrajectories(&context);
  std::thread reader([this, &stream] { ReadAcks(stream.get()); });
  absl::Status broken = WriteLoop(stream.get());
  if (broken.ok()) {  // Stop(): half-close and let the learner end the stream
    stream->WritesDone();
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithDeadline(absl::Condition(&reader_done_), close_deadline_);
  }
  {
    // A stream the learner ended keeps its status (e.g. UNAVAILABLE); any other is cancelled,
    // which also ends the reader's Read.
    absl::MutexLock lock(&mu_);
    if (!reader_done_) context.TryCancel();
  }
  reader.join();
  const absl::Status finished = grpc_util::FromGrpcStatus(stream->Finish());
  absl::MutexLock lock(&mu_);
  stream_context_ = nullptr;
  *acked_any = acks_on_stream_ > 0;
  if (!broken.ok() && !finished.ok()) {
    return absl::Status(finished.code(), absl::StrCat(broken.message(), ": ", finished.message()));
  }
  return broken.ok() ? finished : broken;
}

absl::Status TrajectoryPusher::WriteLoop(Stream* stream) {
  while (true) {
    rlhf::v1::Trajectory next;
    bool woken;
    {
      absl::MutexLock lock(&mu_);
      woken = mu_.AwaitWithTimeout(absl::Condition(this, &TrajectoryPusher::WriterHasWork),
                                   options_.channel_check_interval);
      if (stopping_) return absl::OkStatus();
      if (reader_done_) return absl::UnavailableError("the learner ended the stream");
      if (woken) {
        auto it = unacked_.lower_bound(next_to_send_);
        if (it->second.sent) {
          ++stats_.resent;
          metrics_->resent.Increment();
        }
        it->second.sent = true;
        next_to_send_ = it->first + 1;
        next = it->second.trajectory;  // a copy: the lock is not held during Write
      }
    }
    if (!woken) {  // idle: is the connection still there?
      const grpc_connectivity_state state = channel_->GetState(/*try_to_connect=*/false);
      if (state == GRPC_CHANNEL_TRANSIENT_FAILURE || state == GRPC_CHANNEL_SHUTDOWN) {
        return absl::UnavailableError(absl::StrCat("channel to the learner is in state ", state));
      }
      continue;
    }
    if (!stream->Write(next)) return absl::UnavailableError("write to the learner failed");
  }
}

void TrajectoryPusher::ReadAcks(Stream* stream) {
  rlhf::v1::Ack ack;
  while (stream->Read(&ack)) OnAck(ack);
  absl::MutexLock lock(&mu_);
  reader_done_ = true;
}

void TrajectoryPusher::OnAck(const rlhf::v1::Ack& ack) {
  absl::MutexLock lock(&mu_);
  auto id = seq_by_id_.find(ack.trajectory_id());
  if (id == seq_by_id_.end()) {
    VLOG(1) << "ack for a trajectory not waiting for one: '" << ack.trajectory_id() << "'";
    return;
  }
  unacked_.erase(id->second);
  seq_by_id_.erase(id);
  ++acks_on_stream_;
  switch (ack.outcome()) {
    case rlhf::v1::Ack::ACCEPTED:
      ++stats_.acked_accepted;
      break;
    case rlhf::v1::Ack::DUPLICATE:
      ++stats_.acked_duplicate;
      break;
    case rlhf::v1::Ack::STALE:
      ++stats_.acked_stale;
      break;
    default:
      ++stats_.acked_invalid;
      LOG(WARNING) << "learner rejected trajectory '" << ack.trajectory_id()
                   << "' as invalid: " << ack.message();
  }
  metrics_->Ack(ack.outcome()).Increment();
  stats_.unacked = unacked_.size();
  metrics_->unacked.Set(stats_.unacked);
}

}  // namespace rlhf::rollout
