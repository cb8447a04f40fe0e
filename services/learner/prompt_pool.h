// The learner's prompt pool: reads the run's prompts (JSONL), hands them to rollout workers in
// time-limited leases, and takes them back when a lease is returned or runs out, keeping the
// ledger of every prompt it handed out.
//
// Protocol:
//  1. Prompts are served in epochs. Epoch e is a permutation of all prompts drawn from a
//     std::mt19937_64 seeded from (seed, e) with our own Fisher-Yates, so the order is the same
//     on every platform. position() counts the fresh prompts drawn so far over all epochs;
//     Restore(position) before the first lease makes a resumed run continue exactly there.
//  2. Lease() first expires overdue leases: their not-completed prompts join the "requeued"
//     FIFO. It then grants up to max_prompts prompts, requeued ones first, then fresh ones from
//     the cursor. Expiry also runs at the start of Return() and Complete(), so whether a
//     trajectory arrived in time depends on the clock, not on which call came first.
//  3. Return() puts a live lease's not-completed prompts in the requeued FIFO at once.
//  4. Complete() records that a trajectory for one prompt of a lease arrived. When all of a
//     lease's prompts are complete the lease ends. A trajectory of an expired or returned lease
//     is a late completion: counted, but the prompt has already been requeued and will be
//     generated again (intended). Unknown leases and repeats are counted as ignored.
//  5. Close() stops leasing (the run is finishing); Return() and Complete() keep working.
//
// Groups (options.group_size k > 1, for RLOO/GRPO): a lease holds whole groups, each k copies of
// one prompt, consecutive (LeaseSize: max(1, max_prompts / k) groups). A group is identified by
// (lease_id, prompt_index); a prompt drawn twice into one lease (a small pool across an epoch
// boundary) makes 2k interchangeable samples, i.e. two groups under that key. The requeued FIFO
// then holds groups, not slots: a lease that is returned or expires requeues each of its groups
// that is not complete (ceil(pending / k) per prompt) as a whole group, to be generated again,
// and reports it in TakeVoidedGroups() so that the learner drops the members it already holds
// (late members of a voided group are dropped too, see trajectory_queue.h). Completed slots of
// a voided group are counted in completions_voided.
//
// Ledger (PromptPoolStats), an exact identity at every instant:
//     prompts_leased == prompts_completed + prompts_returned + prompts_expired + outstanding
// where every term counts prompt slots of leases (a prompt re-issued twice counts twice), and
// prompts_completed counts in-time completions only (late ones are late_completions). Also:
//     prompts_returned + prompts_expired + completions_voided == prompts_reissued + requeued
//     prompts_leased == prompts_reissued + (position - restored position)
//
// Resume: position counts draws, not completions; prompts that were leased or requeued when a
// checkpoint was taken are not served again after Restore (they are lost to the run).
//
// Memory: the prompts, the live leases, and for late-completion accounting the not-completed
// prompts of at most kRememberedDeadLeases expired/returned leases (older ones are forgotten:
// their late trajectories then count as ignored).
//
// Thread-safe.
#ifndef RLHF_SERVICES_LEARNER_PROMPT_POOL_H_
#define RLHF_SERVICES_LEARNER_PROMPT_POOL_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "rlhf/v1/services.pb.h"
#include "rlhf/v1/trajectory.pb.h"

namespace rlhf::learner {

// Reads a prompt file: one JSON object per line with a non-empty string field "prompt"; lines
// holding only whitespace are skipped. Returns the prompts in file order.
// Errors: NOT_FOUND "<path>: cannot open" when the file cannot be read; INVALID_ARGUMENT
// "<path>:<line>: ..." for a line that is not JSON, not an object, has no string "prompt" or an
// empty one, and "<path>: no prompts" for a file without any.
absl::StatusOr<std::vector<std::string>> ReadPromptsJsonl(const std::string& path);
// The same file read as whole records: each line's object (its "prompt" checked as above), for
// readers that take more fields beside the prompt (the CAI jobs).
absl::StatusOr<std::vector<nlohmann::json>> ReadPromptRecordsJsonl(const std::string& path);

struct PromptPoolOptions {
  /// How long a lease lasts before its not-completed prompts go back to the pool.
  absl::Duration lease_duration = absl::Seconds(60);
  /// Seed of the epoch permutations (LearnerConfig.seed).
  uint64_t seed = 1;
  /// Most prompts one Lease() call may ask for.
  int max_lease_prompts = 256;
  /// Copies of each prompt leased together (PpoConfig.group_size for RLOO/GRPO; 1 = no groups);
  /// at most max_lease_prompts.
  int group_size = 1;
  /// The clock; tests inject a fake one so that expiry needs no sleeping.
  std::function<absl::Time()> now = absl::Now;
};

absl::Status Validate(const PromptPoolOptions& options);

// The ledger; see the identities in the file comment.
struct PromptPoolStats {
  int64_t prompts_leased = 0;       // prompt slots granted in leases (fresh + reissued)
  int64_t prompts_reissued = 0;     // of those, taken from the requeued FIFO
  int64_t prompts_completed = 0;    // completed while their lease was live
  int64_t prompts_returned = 0;     // requeued by Return()
  int64_t prompts_expired = 0;      // requeued because their lease expired
  int64_t late_completions = 0;     // completions of prompts of expired/returned leases
  int64_t ignored_completions = 0;  // unknown lease, prompt not in it, or a repeat
  int64_t outstanding = 0;          // slots of live leases not completed yet
  int64_t requeued = 0;             // prompt slots waiting in the requeued FIFO
  int64_t completions_voided = 0;   // completed slots of groups requeued whole (group_size > 1)
  int64_t leases_active = 0;        // live leases
  int64_t position = 0;             // fresh prompts drawn over all epochs (the resume cursor)
};

class PromptPool {
 public:
  // Expired/returned leases remembered for late-completion accounting.
  static constexpr int kRememberedDeadLeases = 4096;

  // Returns a pool serving `prompts`. REQUIRES (else INVALID_ARGUMENT): prompts non-empty,
  // prompts[i].index() == i and prompts[i].tokens() non-empty; Validate(options).ok().
  static absl::StatusOr<std::unique_ptr<PromptPool>> Create(std::vector<rlhf::v1::Prompt> prompts,
                                                            PromptPoolOptions options);

  PromptPool(const PromptPool&) = delete;
  PromptPool& operator=(const PromptPool&) = delete;

  // Sets the cursor to `position` (from a checkpoint): the next fresh prompt is the one that
  // the run would have drawn next. Errors: INVALID_ARGUMENT for position < 0,
  // FAILED_PRECONDITION once a lease has been granted.
  absl::Status Restore(int64_t position) ABSL_LOCKS_EXCLUDED(mu_);

  // Numbers the leases from `first` on ("L<first>", ...), so that lease ids (and the group keys
  // made from them) differ from those of an earlier run of the learner whose trajectories are
  // still about. Errors: INVALID_ARGUMENT for 0, FAILED_PRECONDITION once a lease has been
  // granted.
  absl::Status StartLeaseNumbersAt(uint64_t first) ABSL_LOCKS_EXCLUDED(mu_);

  // Returns the fresh prompts drawn so far (the value to checkpoint).
  int64_t position() const ABSL_LOCKS_EXCLUDED(mu_);

  // Returns the number of prompt slots Lease(_, max_prompts) grants: max_prompts, or with
  // groups max(1, max_prompts / group_size) whole groups (possibly more than max_prompts).
  int LeaseSize(int max_prompts) const;

  // Grants a lease of LeaseSize(max_prompts) prompts to `worker_id` (fresh prompts never run
  // out). Sets lease_id ("L<n>", unique), expires_in_seconds and
  // prompts; leaves policy_version and sampling to the caller. A small pool may repeat a prompt
  // within one lease when the lease spans epochs. Errors: INVALID_ARGUMENT for max_prompts
  // outside [1, max_lease_prompts], FAILED_PRECONDITION after Close().
  absl::StatusOr<rlhf::v1::PromptLease> Lease(const std::string& worker_id, int max_prompts)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Ends a live lease, requeueing its not-completed prompts at once. Returns how many.
  // Errors: NOT_FOUND for an unknown, expired, returned or finished lease.
  absl::StatusOr<int> Return(const std::string& lease_id) ABSL_LOCKS_EXCLUDED(mu_);

  // Records that a trajectory for `prompt_index` of `lease_id` arrived. Call it once per
  // trajectory that counts for its prompt (the learner: once it is ACCEPTED; a prompt whose
  // trajectory was rejected stays outstanding, expires and is generated again). Never fails:
  // unknown leases and repeats are counted in ignored_completions, trajectories of
  // expired/returned leases in late_completions.
  void Complete(const std::string& lease_id, int64_t prompt_index) ABSL_LOCKS_EXCLUDED(mu_);

  // Returns OK when trajectory `t` may come from a lease of this pool: no lease_id (a replay or
  // a test, not checked), or a lease_id "L<n>" that was granted (by this run or, numbered below
  // it, by an earlier run of the learner: see StartLeaseNumbersAt), a prompt_index of the pool
  // and prompt_tokens equal to that prompt's tokens. Otherwise INVALID_ARGUMENT naming the
  // field. Whether the lease is still live does not matter (late completions count, item 4).
  absl::Status CheckTrajectory(const rlhf::v1::Trajectory& t) const ABSL_LOCKS_EXCLUDED(mu_);

  // A group (group_size > 1) whose lease ended before it was complete; requeued whole.
  struct VoidedGroup {
    std::string lease_id;
    int64_t prompt_index = 0;
  };
  // Returns the groups voided since the last call, in order, and forgets them. With groups, the
  // learner calls it regularly (they accumulate until then).
  std::vector<VoidedGroup> TakeVoidedGroups() ABSL_LOCKS_EXCLUDED(mu_);

  // Requeues the prompts of leases past their deadline now (Lease, Return and Complete do it
  // too); for callers that look at Stats() to decide whether to lease.
  void Expire() ABSL_LOCKS_EXCLUDED(mu_);

  // Stops leasing: Lease() returns FAILED_PRECONDITION from now on.
  void Close() ABSL_LOCKS_EXCLUDED(mu_);

  // Returns the ledger. Does not expire overdue leases (they count as outstanding until the
  // next Lease/Return/Complete).
  PromptPoolStats Stats() const ABSL_LOCKS_EXCLUDED(mu_);

  // Returns the number of prompts.
  int64_t num_prompts() const { return static_cast<int64_t>(prompts_.size()); }

  // Returns the most prompts one Lease() call may ask for (options.max_lease_prompts).
  int max_lease_prompts() const { return options_.max_lease_prompts; }

 private:
  struct LiveLease {
    std::string worker_id;
    absl::Time expiry;
    std::vector<int64_t> pending;  // prompt indices not completed yet (may repeat)
  };

  PromptPool(std::vector<rlhf::v1::Prompt> prompts, PromptPoolOptions options);

  // Returns the next fresh prompt index and advances the cursor.
  int64_t DrawFresh() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Requeues the pending prompts of every live lease whose expiry is <= now.
  void ExpireOverdue(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves live lease `it` to the dead leases, requeueing its pending prompts (with groups: its
  // incomplete groups, whole); returns how many pending slots it had.
  int KillLease(std::map<uint64_t, LiveLease>::iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Constant after construction.
  const std::vector<rlhf::v1::Prompt> prompts_;
  const PromptPoolOptions options_;

  // State below is protected by mu_.
  mutable absl::Mutex mu_;
  int64_t position_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t restored_position_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t perm_epoch_ ABSL_GUARDED_BY(mu_) = -1;  // epoch that perm_ holds
  std::vector<int64_t> perm_ ABSL_GUARDED_BY(mu_);
  // Prompt indices to lease again: each one a slot, or with groups a whole group.
  std::deque<int64_t> requeued_ ABSL_GUARDED_BY(mu_);
  std::vector<VoidedGroup> voided_ ABSL_GUARDED_BY(mu_);
  // Keyed by the lease number n of "L<n>": issue order, hence expiry order.
  std::map<uint64_t, LiveLease> leases_ ABSL_GUARDED_BY(mu_);
  // Not-completed prompts of expired/returned leases, for late completions.
  std::map<uint64_t, std::vector<int64_t>> dead_leases_ ABSL_GUARDED_BY(mu_);
  uint64_t next_lease_ ABSL_GUARDED_BY(mu_) = 1;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  PromptPoolStats stats_ ABSL_GUARDED_BY(mu_);  // outstanding/requeued/... filled by Stats()
};

}  // namespace rlhf::learner

#endif  // RLHF_SERVICES_LEARNER_PROMPT_POOL_H_
