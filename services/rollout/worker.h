// The rollout worker's PPO loop: lease prompts from the learner, generate responses with the
// current policy, get reference log-probs and rewards, and stream the finished trajectories
// to the learner (contract: proto/rlhf/v1/services.proto, Learner / Reference / Reward).
//
// The loop, on one thread of its own:
//  1. Wait until the learner's health service reports SERVING (backoff, until Stop).
//  2. LeasePrompts(worker_id, batch_prompts). An empty lease means the pool is closed or empty
//     for now: back off and lease again.
//  3. When the lease's policy_version is not the one held, GetWeights(that version), assemble
//     it (at most the model's float32 size), load it into the staging model and swap the new
//     engine into the PolicyHolder (the Generate service uses it from its next batch). "Not
//     the one held" rather than "newer": a learner that restarted from an older checkpoint
//     must be followed, or trajectories would carry versions it never published. The
//     initially loaded checkpoint is version -1, so the first lease always syncs.
//     FAILED_PRECONDITION / NOT_FOUND (version gone or not yet published): return the lease
//     and lease again after a backoff.
//  4. Generate all prompts of the lease as one batch with one policy snapshot, prompt i with
//     seed + i, using the lease's sampling parameters.
//  5. Reference.LogProbs (prompt + response, start = prompt length, the sampling temperature)
//     and Reward.Score (tokens, and decoded texts when a tokenizer is set).
//  6. Build one Trajectory per prompt, id "<worker_id>/<sequence>", and hand it to the
//     TrajectoryPusher (see trajectory_pusher.h: acks, backpressure at max_unacked,
//     reconnect and re-send of the unacked ones).
//
// Errors: every unary call has the rpc deadline; UNAVAILABLE, DEADLINE_EXCEEDED and
// RESOURCE_EXHAUSTED are retried with backoff until Stop; any other error of a lease's work
// (INVALID_ARGUMENT from generation, reference or reward; a malformed weight stream) is logged,
// the lease is returned (ReturnLease) and counted in rlhf_rollout_leases_returned_total, and the
// loop leases again after a backoff.
//
// Sequence numbers start at the worker's start time in microseconds, so a worker restarted
// with the same worker_id does not reuse trajectory ids (the learner would drop them as
// duplicates).
//
// Thread-safe.
#ifndef RLHF_SERVICES_ROLLOUT_WORKER_H_
#define RLHF_SERVICES_ROLLOUT_WORKER_H_

#include <prometheus/registry.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/tokenizer/tokenizer.h"
#include "rlhf/v1/config.pb.h"
#include "services/rollout/policy_holder.h"

namespace rlhf::rollout {

struct WorkerOptions {
  // Where the other services are (host:port).
  std::string learner_address;
  std::string reward_address;
  std::string reference_address;
  /// This worker's id in trajectory ids, leases and logs.
  std::string worker_id;

  /// Prompts leased (and generated as one batch) at a time.
  int batch_prompts = 8;
  /// Most trajectories sent and not yet acked; the loop waits for acks beyond it.
  int max_unacked = 64;

  /// Deadline of each unary call, and of a whole GetWeights stream.
  absl::Duration rpc_deadline = absl::Seconds(30);
  /// Retry backoff: starts at initial, doubles up to max (with jitter).
  absl::Duration initial_backoff = absl::Milliseconds(50);
  absl::Duration max_backoff = absl::Seconds(2);
  /// Largest message on the worker's channels, in bytes.
  int max_message_bytes = 64 << 20;
  /// File to append the id of every generated trajectory to, one per line, before it is pushed
  /// (a plain write(2), so the line survives the worker being killed); empty = none.
  std::string generated_log;
};

// Returns InvalidArgument naming the first bad field.
absl::Status Validate(const WorkerOptions& options);

// Options from the typed config (worker_id as given, possibly empty).
WorkerOptions WorkerOptionsFromConfig(const rlhf::v1::WorkerConfig& config);

// Counts since Start(), for tests and logs (the same numbers are exported as metrics).
struct WorkerStats {
  int64_t generated = 0;  // trajectories built and pushed
  int64_t acked_accepted = 0;
  int64_t acked_duplicate = 0;
  int64_t acked_invalid = 0;
  int64_t acked_stale = 0;
  int64_t resent = 0;
  int64_t weight_syncs = 0;
  int64_t leases_returned = 0;
  int64_t policy_version = -1;  // the version the policy holder holds
  int64_t unacked = 0;
};

class RolloutWorker {
 public:
  // Returns a worker that generates with `policy` (shared with the Generate service) and
  // records metrics in `registry` (which must outlive it). `tokenizer` may be null: prompts
  // must then come as tokens, and rewards get no texts. Nothing runs before Start().
  // Errors: InvalidArgument for bad options, a null policy, a tokenizer whose vocabulary
  // differs from the model's, or metric families that clash with ones in `registry`.
  static absl::StatusOr<std::unique_ptr<RolloutWorker>> Create(
      const WorkerOptions& options, std::shared_ptr<PolicyHolder> policy,
      std::unique_ptr<tokenizer::Tokenizer> tokenizer, prometheus::Registry& registry);

  virtual ~RolloutWorker() = default;  // Stops (grace 0) if still running.
  RolloutWorker(const RolloutWorker&) = delete;
  RolloutWorker& operator=(const RolloutWorker&) = delete;

  // Starts the loop and the trajectory stream. Does nothing when called again or after
  // Stop().
  virtual void Start() = 0;

  // Stops leasing (a lease not yet generated is returned to the learner), lets the batch in
  // progress finish and waits for outstanding acks, all within `grace`; then cancels what is
  // still in flight and joins every thread. A generation step already running is not
  // interrupted, so Stop can exceed `grace` by one batch's generation time. Idempotent.
  virtual void Stop(absl::Duration grace) = 0;

  virtual WorkerStats Stats() const = 0;

 protected:
  RolloutWorker() = default;
};

}  // namespace rlhf::rollout

#endif  // RLHF_SERVICES_ROLLOUT_WORKER_H_
