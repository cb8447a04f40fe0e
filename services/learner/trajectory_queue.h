// The learner's trajectory queue: the bounded FIFO between the PushTrajectories streams
// (producers, gRPC reactions that must never block) and the PPO trainer (consumer). It validates
// and deduplicates trajectories, drops stale ones, keeps the ledger, and applies backpressure by
// parking a producer's trajectory until there is room.
//
// Protocol:
//  1. Offer() judges a trajectory at once, in this order: an id seen before is DUPLICATE; one
//     failing ValidateTrajectory, from a version newer than the current one (once a version is
//     published) or failing options.check is INVALID; one more than max_policy_lag versions
//     behind is STALE; otherwise it is ACCEPTED when there is room. Every non-empty id offered is
//     remembered, whatever the outcome, so a resent trajectory is judged once.
//  2. When the queue is full the trajectory is parked with its Waiter (OfferResult.blocked; no
//     ack yet). The producer stops reading its stream until the waiter is called.
//  3. PopBatch() takes trajectories in FIFO order, drops those that have become stale, and
//     admits parked trajectories into the freed room in the order they were parked. It then
//     calls each admitted trajectory's Waiter::OnAccepted with an ACCEPTED ack, outside the
//     queue's lock, one call at a time, in admission order.
//  4. Cancel(waiter) (the stream is closing) drops the waiter's parked trajectory, if any, as
//     "cancelled", discards an undelivered ack of it, and waits for a call of the waiter that is
//     in progress on another thread; after it returns the waiter is never called again.
//  5. Close() wakes PopBatch; Offer then fails with UNAVAILABLE. PopBatch keeps draining what is
//     queued without waiting, and parked trajectories are still admitted.
//
// Groups (options.group_size k > 1, for RLOO/GRPO): the trajectories of one group share their
// group key (lease_id, prompt_index; see prompt_pool.h) and are trained on together.
//  - An accepted trajectory is held in the queue until its key has k members; PopBatch returns
//    whole groups only (in the order they completed, each group's members consecutive), never
//    more than n trajectories. A key with 2k members (a prompt drawn twice into one lease) is
//    two groups: its first k members, then the next k.
//  - A group is dropped whole, counted as stale_at_pop, when one member has become stale: at
//    pop for a complete group, and for an incomplete one at every PopBatch (it can never be
//    trained on), its key then being voided.
//  - VoidGroup(lease, prompt) (the pool requeued that group because its lease ended first)
//    drops the key's members beyond its complete groups as stale_at_pop. Later trajectories of
//    a voided key are STALE on arrival (or, parked, dropped as stale_at_pop when admitted).
//  - A member that is never accepted (INVALID, DUPLICATE, cancelled) does not complete its slot
//    in the pool: its lease expires and the group is voided then.
//  - Restore() drops the incomplete groups of the restored trajectories (their leases belong
//    to the learner that died) and voids their keys.
// Capacity counts held members too.
//
// Ledger (TrajectoryLedger), exact identities whenever the lock is free:
//     received == accepted + duplicate + invalid + stale_on_arrival + parked + cancelled
//     accepted == consumed + stale_at_pop + queued
// (`accepted` includes parked trajectories admitted later.)
//
// Journal (optional): with options.journal, each verdict above is also appended to it, so that a
// learner that dies can queue again what it had accepted and not trained on. An acceptance that
// cannot be journaled is refused (UNAVAILABLE, nothing counted: the producer resends).
//
// Memory: every id ever offered is kept in a hash set for deduplication, about
// id length + 40 bytes each (~64 MB for a million trajectories with 20-byte ids).
//
// Thread-safe.
#ifndef RLHF_SERVICES_LEARNER_TRAJECTORY_QUEUE_H_
#define RLHF_SERVICES_LEARNER_TRAJECTORY_QUEUE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "rlhf/v1/services.pb.h"
#include "rlhf/v1/trajectory.pb.h"
#include "services/learner/trajectory_journal.h"

namespace rlhf::learner {

// Returns OK when `t` is well-formed: non-empty id, prompt and response tokens; token ids in
// [0, vocab_size); len(prompt) + len(response) <= max_seq_len; behaviour_logprobs and
// ref_logprobs with one finite entry <= 1e-3 per response token; a finite reward;
// policy_version >= 0. Otherwise INVALID_ARGUMENT "trajectory <id>: <field> ...".
absl::Status ValidateTrajectory(const rlhf::v1::Trajectory& t, int64_t vocab_size,
                                int64_t max_seq_len);

struct TrajectoryQueueOptions {
  /// Most accepted trajectories waiting for the trainer (LearnerConfig.max_queue).
  int capacity = 256;
  /// Token ids must be in [0, vocab_size).
  int64_t vocab_size = 0;
  /// Prompt plus response tokens at most (the policy's context).
  int64_t max_seq_len = 0;
  /// A trajectory of version v is kept at version u only if u - v <= max_policy_lag.
  int64_t max_policy_lag = 1;
  /// When set (not owned; outlives the queue), every verdict is recorded in it under the
  /// queue's lock, an acceptance before its ack can be sent (see trajectory_journal.h).
  TrajectoryJournal* journal = nullptr;
  /// Trajectories per group (PpoConfig.group_size for RLOO/GRPO; 1 = no groups); <= capacity.
  int group_size = 1;
  /// When set, a further check of each offered trajectory that ValidateTrajectory passed (the
  /// learner's: that its lease and prompt are ones it handed out, PromptPool::CheckTrajectory);
  /// an error makes the trajectory INVALID with that message. Called without the queue's lock
  /// from any producer's thread: it must be thread-safe.
  std::function<absl::Status(const rlhf::v1::Trajectory&)> check;
};

// The key under which the queue groups trajectories (group_size > 1).
std::string TrajectoryGroupKey(const std::string& lease_id, int64_t prompt_index);

absl::Status Validate(const TrajectoryQueueOptions& options);

// The ledger; see the identities in the file comment.
struct TrajectoryLedger {
  int64_t received = 0;  // Offer() calls before Close() (not the refused ones)
  int64_t accepted = 0;  // queued at once or admitted from parked
  int64_t duplicate = 0;
  int64_t invalid = 0;
  int64_t stale_on_arrival = 0;  // STALE acks
  int64_t stale_at_pop = 0;      // accepted, then too old when popped: dropped
  int64_t cancelled = 0;         // parked, then dropped by Cancel()
  int64_t consumed = 0;          // returned by PopBatch()
  int64_t queued = 0;            // accepted and waiting
  int64_t parked = 0;            // waiting for room
  int64_t held = 0;              // of queued: members of groups not complete yet
};

class TrajectoryQueue {
 public:
  // Voided group keys remembered (group_size > 1).
  static constexpr int kRememberedVoidedGroups = 4096;

  // A producer's callback for a parked trajectory. Implemented by the stream reactor.
  class Waiter {
   public:
    virtual ~Waiter() = default;
    // Called once when the producer's parked trajectory is accepted, on a PopBatch() thread,
    // without the queue's lock: it may call Offer() (the next trajectory), Cancel() and Close(),
    // not PopBatch(). It must not block (in particular not on a lock that a thread holds while
    // it calls Cancel(this): Cancel waits for this call to return).
    virtual void OnAccepted(const rlhf::v1::Ack& ack) = 0;
  };

  struct OfferResult {
    rlhf::v1::Ack ack;     // the verdict; meaningless while blocked
    bool blocked = false;  // parked: the ack comes later through the Waiter
  };

  static absl::StatusOr<std::unique_ptr<TrajectoryQueue>> Create(
      const TrajectoryQueueOptions& options);

  TrajectoryQueue(const TrajectoryQueue&) = delete;
  TrajectoryQueue& operator=(const TrajectoryQueue&) = delete;

  // Judges `t` against the policy version `current_version` (protocol steps 1 and 2).
  // REQUIRES: `waiter` has no parked trajectory (else FAILED_PRECONDITION, nothing counted) and
  // outlives its parked trajectory or its Cancel(). A null waiter parks nothing: a full queue
  // is then RESOURCE_EXHAUSTED and nothing is counted or remembered.
  // Errors: UNAVAILABLE after Close() (nothing counted).
  absl::StatusOr<OfferResult> Offer(rlhf::v1::Trajectory t, int64_t current_version, Waiter* waiter)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Drops `waiter`'s parked trajectory, if any (protocol step 4). When it returns, `waiter`
  // will not be called again and may be destroyed. Idempotent; for waiters with nothing
  // parked it only waits out a call in progress.
  void Cancel(Waiter* waiter) ABSL_LOCKS_EXCLUDED(mu_);

  // Returns up to `n` trajectories, oldest first, none older than max_policy_lag versions
  // behind `current_version` (those are dropped as stale_at_pop). Waits until min(n, capacity)
  // are queued, `timeout` passes or Close() is called; may return fewer, possibly none. Then
  // delivers the acks of admitted parked trajectories (protocol step 3). With groups: whole
  // groups only, waiting for min(n, capacity) rounded down to whole groups to be complete.
  std::vector<rlhf::v1::Trajectory> PopBatch(int n, int64_t current_version, absl::Duration timeout)
      ABSL_LOCKS_EXCLUDED(mu_);

  // With groups: drops the members of key (lease_id, prompt_index) beyond its complete groups
  // (stale_at_pop) and refuses its later trajectories (see Groups above). Returns how many were
  // dropped. A no-op without groups.
  int VoidGroup(const std::string& lease_id, int64_t prompt_index) ABSL_LOCKS_EXCLUDED(mu_);

  // A resumed learner's queue, from its journal: `queued` in order (even beyond capacity),
  // every id of `seen` remembered, and `ledger` (queued and parked ignored) as the starting
  // counts. REQUIRES: before any Offer.
  void Restore(std::vector<rlhf::v1::Trajectory> queued, const std::vector<std::string>& seen,
               const TrajectoryLedger& ledger) ABSL_LOCKS_EXCLUDED(mu_);

  // Wakes PopBatch and refuses later Offers (protocol step 5). Idempotent.
  void Close() ABSL_LOCKS_EXCLUDED(mu_);

  // Returns the ledger.
  TrajectoryLedger Ledger() const ABSL_LOCKS_EXCLUDED(mu_);

  // Returns the number of accepted trajectories waiting.
  int64_t size() const ABSL_LOCKS_EXCLUDED(mu_);

  // Returns size() plus the trajectories PopBatch has returned since the last ReleaseTaken():
  // the batch being trained on, which the learner's lease gate still counts as in flight.
  int64_t QueuedOrTaken() const ABSL_LOCKS_EXCLUDED(mu_);

  // The trainer is done with what it popped (its step is published).
  void ReleaseTaken() ABSL_LOCKS_EXCLUDED(mu_);

  // An ACCEPTED ack that Offer returned promises what the journal's sync setting says: under
  // TrajectoryJournal::Sync::kBatch, the acceptance on disk. WhenJournaled(send) calls `send`
  // once it is (on the journal's sync thread, or at once without a journal or under another
  // setting); AwaitJournal() blocks until it is. A sync that fails is logged: the trajectory
  // stays accepted and queued, and only a power loss could then lose it. Acks of parked
  // trajectories wait for it in DeliverNotes. Call either without holding a lock that Offer or
  // the waiters take.
  void WhenJournaled(std::function<void()> send) const;
  void AwaitJournal() const;

 private:
  struct Parked {
    rlhf::v1::Trajectory trajectory;
    Waiter* waiter;
  };
  struct Note {  // an ack to deliver
    Waiter* waiter;
    rlhf::v1::Ack ack;
  };

  explicit TrajectoryQueue(const TrajectoryQueueOptions& options);

  // Appends an accepted trajectory to queue_, counting it in its group.
  void Enqueue(rlhf::v1::Trajectory t) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Counts the members of each key in queue_ again, and ready_.
  void Recount() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops trajectory `t` of queue_ as stale_at_pop.
  void DropAtPop(const rlhf::v1::Trajectory& t) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Remembers `key` as voided (the last kRememberedVoidedGroups of them).
  void RememberVoided(const std::string& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops the members of `key` beyond its complete groups (the latest ones); returns how many.
  int DropIncomplete(const std::string& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // PopBatch's work with groups, under the lock.
  void PopGroups(int n, int64_t current_version, std::vector<rlhf::v1::Trajectory>* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  bool IsStale(const rlhf::v1::Trajectory& t, int64_t current_version) const;
  // ValidateTrajectory, then a policy_version newer than `current_version` (when >= 0), then
  // options_.check. Reads only `t` and constants: called without the lock.
  absl::Status Judge(const rlhf::v1::Trajectory& t, int64_t current_version) const;
  // Records a dropped trajectory's verdict in the journal, if any (errors are logged).
  void Journal(TrajectoryJournal::Kind kind, const std::string& id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves parked trajectories into free room, queueing their notes.
  void AdmitParked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Calls the waiters of queued notes unless another thread is already doing so. Takes and
  // releases mu_ around each call.
  void DeliverNotes() ABSL_LOCKS_EXCLUDED(mu_);

  // Constant after construction.
  const TrajectoryQueueOptions options_;

  // State below is protected by mu_.
  mutable absl::Mutex mu_;
  std::deque<rlhf::v1::Trajectory> queue_ ABSL_GUARDED_BY(mu_);
  // Invariant: parked_ is empty or queue_ is full.
  std::deque<Parked> parked_ ABSL_GUARDED_BY(mu_);
  // Every id received in this run (and, after a resume, in the runs before), as a 64-bit hash
  // of the id: 8 bytes in a flat table instead of ~120 in a node set of strings, since it grows
  // with every trajectory of the run (a million ids: ~16 MB). Two ids of one run share a hash
  // with probability about n^2 / 2^65 (3e-8 for a million); the second would be answered
  // DUPLICATE and show in the run's ledger as generated but never accepted.
  absl::flat_hash_set<uint64_t> seen_ids_ ABSL_GUARDED_BY(mu_);
  static uint64_t IdHash(const std::string& id) { return absl::Hash<std::string>{}(id); }
  std::deque<Note> notes_ ABSL_GUARDED_BY(mu_);
  // The thread delivering notes (one at a time) and the waiter it is calling now, if any.
  bool delivering_ ABSL_GUARDED_BY(mu_) = false;
  std::thread::id delivering_thread_ ABSL_GUARDED_BY(mu_);
  Waiter* calling_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  int64_t taken_ ABSL_GUARDED_BY(mu_) = 0;  // popped since the last ReleaseTaken()
  // With groups: members of each key in queue_, and how many of queue_ are in complete groups.
  std::unordered_map<std::string, int> group_members_ ABSL_GUARDED_BY(mu_);
  int64_t ready_ ABSL_GUARDED_BY(mu_) = 0;
  // Voided keys, oldest first (bounded; a trajectory of a forgotten one is held until stale).
  std::unordered_set<std::string> voided_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> voided_order_ ABSL_GUARDED_BY(mu_);
  TrajectoryLedger ledger_ ABSL_GUARDED_BY(mu_);  // queued/parked filled by Ledger()
};

}  // namespace rlhf::learner

#endif  // RLHF_SERVICES_LEARNER_TRAJECTORY_QUEUE_H_
