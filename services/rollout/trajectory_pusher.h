// The rollout worker's side of Learner.PushTrajectories: one long-lived stream to the learner
// that never loses a trajectory the learner has not acked.
//
// Protocol:
//  1. Push() admits a trajectory once fewer than max_unacked are unacked, blocking its caller
//     until then (the loop generates no faster than the learner acks; the wait is counted in
//     rlhf_rollout_push_blocked_seconds_total), and keeps it, in push order, until its ack.
//  2. The stream thread opens a stream and writes every kept trajectory in push order, then
//     each new one as it is pushed. A Write blocks while the learner does not read (HTTP/2
//     flow control): that is the learner's backpressure, and it reaches Push() through (1).
//  3. The stream's reader thread takes Acks in order; an ack of any outcome (ACCEPTED,
//     DUPLICATE, INVALID, STALE) releases its trajectory: the learner has it or has judged it.
//  4. The stream is broken when a Write or a Read fails (the learner ended it, restarted or
//     died: the transport fails its streams), or when, waiting for work, the stream thread sees
//     the channel in TRANSIENT_FAILURE or SHUTDOWN. The thread cancels the stream, joins the
//     reader, waits a backoff and goes back to (2): every unacked trajectory is written again,
//     in order (the learner answers DUPLICATE for those it already had). Nothing acked is sent
//     again; nothing unacked is dropped.
//  5. Stop() half-closes a healthy stream, waits until the learner ends it or the close timeout
//     passes, then cancels it (which also ends a Write blocked by flow control) and joins both
//     threads. Trajectories still unacked then are dropped (logged); their leases expire on
//     the learner and the prompts go back to its pool.
//
// The stream has no overall deadline (it lives as long as the worker); see (4) for how a dead
// learner is noticed.
//
// Why the synchronous API in a dedicated writer/reader thread pair and not a callback reactor:
// these threads belong to the worker and are allowed to block (a Write held by flow control is
// exactly the backpressure we want, and TryCancel releases it); "reactions never block" binds
// gRPC's callback threads, which this class does not use. Reconnect-and-resend is then a plain
// loop rather than a state machine spread across reactions.
//
// Thread-safe.
#ifndef RLHF_SERVICES_ROLLOUT_TRAJECTORY_PUSHER_H_
#define RLHF_SERVICES_ROLLOUT_TRAJECTORY_PUSHER_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "rlhf/v1/services.grpc.pb.h"
#include "services/rollout/worker_metrics.h"

namespace rlhf::rollout {

struct PusherOptions {
  /// Most trajectories pushed and not yet acked; Push() blocks beyond it.
  int max_unacked = 64;
  /// Wait before reopening a broken stream: starts at initial, doubles up to max.
  absl::Duration initial_backoff = absl::Milliseconds(50);
  absl::Duration max_backoff = absl::Seconds(2);
  /// How often an idle stream checks the channel's connectivity state.
  absl::Duration channel_check_interval = absl::Seconds(1);
};

struct PushStats {
  int64_t acked_accepted = 0;
  int64_t acked_duplicate = 0;
  int64_t acked_invalid = 0;  // INVALID and unknown outcomes
  int64_t acked_stale = 0;
  int64_t resent = 0;      // writes of a trajectory already written on an earlier stream
  int64_t reconnects = 0;  // streams that broke and were reopened
  int64_t unacked = 0;
};

class TrajectoryPusher {
 public:
  // `channel` leads to the learner; `metrics` must outlive the pusher.
  TrajectoryPusher(const PusherOptions& options, std::shared_ptr<::grpc::Channel> channel,
                   WorkerMetrics* metrics);
  ~TrajectoryPusher();  // Stop(absl::ZeroDuration()) if still running.
  TrajectoryPusher(const TrajectoryPusher&) = delete;
  TrajectoryPusher& operator=(const TrajectoryPusher&) = delete;

  // Starts the stream thread. REQUIRES: called once.
  void Start() ABSL_LOCKS_EXCLUDED(mu_);

  // Keeps `trajectory` until the learner acks it and queues it for writing; blocks while
  // max_unacked are unacked. Returns Cancelled once Stop() has begun (the trajectory is then
  // not kept), InvalidArgument for an id already kept.
  absl::Status Push(rlhf::v1::Trajectory trajectory) ABSL_LOCKS_EXCLUDED(mu_);

  // Waits until no pushed trajectory is unacked, or `deadline`. Returns true when all are
  // acked.
  bool WaitForAcks(absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_);

  // Stops as described in (5) of the protocol, waiting at most `close_timeout` for a graceful
  // close. Idempotent.
  void Stop(absl::Duration close_timeout) ABSL_LOCKS_EXCLUDED(mu_);

  PushStats Stats() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  using Stream = ::grpc::ClientReaderWriter<rlhf::v1::Trajectory, rlhf::v1::Ack>;
  struct Entry {
    rlhf::v1::Trajectory trajectory;
    bool sent = false;  // written on some stream before
  };

  void Run() ABSL_LOCKS_EXCLUDED(mu_);  // the stream thread
  // Runs one stream until it breaks or Stop(); returns why it ended.
  absl::Status RunStream(bool* acked_any) ABSL_LOCKS_EXCLUDED(mu_);
  // Writes kept trajectories until the stream breaks (returns the reason) or Stop() (OK).
  absl::Status WriteLoop(Stream* stream) ABSL_LOCKS_EXCLUDED(mu_);
  void ReadAcks(Stream* stream) ABSL_LOCKS_EXCLUDED(mu_);  // the reader thread
  void OnAck(const rlhf::v1::Ack& ack) ABSL_LOCKS_EXCLUDED(mu_);

  // Conditions, evaluated under mu_.
  bool HasRoom() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool AllAcked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool WriterHasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Constant after construction.
  const PusherOptions options_;
  const std::shared_ptr<::grpc::Channel> channel_;
  const std::unique_ptr<rlhf::v1::Learner::Stub> stub_;
  WorkerMetrics* const metrics_;

  std::thread thread_;  // touched only by Start() and Stop()

  mutable absl::Mutex mu_;
  // Pushed and not yet acked, by push sequence; the id index finds an ack's entry.
  std::map<uint64_t, Entry> unacked_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, uint64_t> seq_by_id_ ABSL_GUARDED_BY(mu_);
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 0;
  // The first sequence not yet written on the current stream.
  uint64_t next_to_send_ ABSL_GUARDED_BY(mu_) = 0;
  // The current stream's context (for Stop's TryCancel), and whether its reader has ended.
  ::grpc::ClientContext* stream_context_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool reader_done_ ABSL_GUARDED_BY(mu_) = false;
  int64_t acks_on_stream_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time close_deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  bool thread_exited_ ABSL_GUARDED_BY(mu_) = true;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;  // Stop() has joined the thread
  PushStats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rlhf::rollout

#endif  // RLHF_SERVICES_ROLLOUT_TRAJECTORY_PUSHER_H_
