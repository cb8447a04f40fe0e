// The learner's journal of trajectories: an append-only file with one record per verdict on a
// received trajectory and one per training batch, so that
//  - a learner that dies loses no accepted trajectory: on restart it re-queues, in their original
//    order, those that no surviving step consumed (workers resend what was never acked, and the
//    journal's ids make those DUPLICATE), and
//  - a run's ledger can be checked per trajectory id against what the workers generated
//    (RunLedger below).
//
// Records: a little-endian u32 payload length, a kind byte, the payload.
//   'A' accepted: the serialized Trajectory
//   'D' duplicate, 'I' invalid, 'S' stale on arrival, 'P' stale when popped (accepted, then
//   dropped), 'X' cancelled (parked, then dropped when its stream closed): the id
//   'C' consumed: u64 step, then the batch's ids, each as u32 length + bytes
//   'R' resumed from the checkpoint of step s (u64): the 'C' records of steps > s before it
//       are void (that work was lost; their trajectories are queued again)
//   'a' accepted, contents dropped by Compact() (it was consumed or dropped): the id
//   'U' Compact()'s summary: u64 duplicates, u64 resumes, u64 last step
// Written with plain write(2) calls (one per record, O_APPEND): a record survives the process
// being killed. Whether it also survives the machine losing power is the Sync setting
// (LearnerConfig.journal_sync):
//   kNone   no fdatasync: what the kernel had not written back is lost with the power;
//   kBatch  group commit: a writer that must not answer before its record is durable (an
//           ACCEPTED ack) hands its answer to WhenDurable(), which a sync thread of the journal
//           calls after an fdatasync that started after the record was written; the callers
//           waiting at the time share one fdatasync, and nobody's thread blocks on the disk
//           (AwaitDurable() is the blocking form);
//   kEvery  fdatasync after every record, before Write returns.
// 'C' and 'R' records are synced at once under kBatch and kEvery (once per step). Compact()
// always syncs. bench/ingest_bench --journal_sync measures the cost of each.
// A torn last record is cut off when the journal is opened again. (A shared mapping instead of
// write(2) was measured slower on ext4: every first write to a page allocates its block in the
// fault handler.)
//
// Thread-safe (appends are serialised).
#ifndef RLHF_SERVICES_LEARNER_TRAJECTORY_JOURNAL_H_
#define RLHF_SERVICES_LEARNER_TRAJECTORY_JOURNAL_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "rlhf/v1/trajectory.pb.h"

namespace rlhf::learner {

// Where a learner with checkpoints in `checkpoint_dir` keeps its journal.
inline std::string JournalPath(const std::string& checkpoint_dir) {
  return checkpoint_dir + "/trajectories.journal";
}

class TrajectoryJournal {
 public:
  enum Kind : char {
    kAccepted = 'A',
    kDuplicate = 'D',
    kInvalid = 'I',
    kStaleOnArrival = 'S',
    kStaleAtPop = 'P',
    kCancelled = 'X',
    kConsumed = 'C',
    kResumed = 'R',
    kAcceptedCompacted = 'a',
    kSummary = 'U',
  };

  enum class Sync { kNone, kBatch, kEvery };

  // Opens (creating) the journal at `path` for appending, after cutting off a torn last record.
  static absl::StatusOr<std::unique_ptr<TrajectoryJournal>> Open(const std::string& path,
                                                                 Sync sync = Sync::kNone);
  ~TrajectoryJournal();
  TrajectoryJournal(const TrajectoryJournal&) = delete;
  TrajectoryJournal& operator=(const TrajectoryJournal&) = delete;

  absl::Status Accepted(const rlhf::v1::Trajectory& t) ABSL_LOCKS_EXCLUDED(mu_);
  // The same in two halves, so that a caller can build the record (serialising the trajectory)
  // outside its own lock and only append under it.
  static std::string AcceptedRecord(const rlhf::v1::Trajectory& t);
  absl::Status Write(const std::string& record) ABSL_LOCKS_EXCLUDED(mu_);
  // A verdict that keeps only the id: kDuplicate, kInvalid, kStaleOnArrival, kStaleAtPop,
  // kCancelled.
  absl::Status Judged(Kind kind, const std::string& id) ABSL_LOCKS_EXCLUDED(mu_);
  // `batch` is trained on by the step that makes the trainer's step count `step`.
  absl::Status Consumed(int64_t step, const std::vector<rlhf::v1::Trajectory>& batch)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The learner resumed from the checkpoint of `step` (0 = a fresh start).
  absl::Status Resumed(int64_t step) ABSL_LOCKS_EXCLUDED(mu_);

  // Under Sync::kBatch, returns once every record written before the call is on disk (one
  // fdatasync serves every caller waiting meanwhile); at once under kNone and kEvery.
  absl::Status AwaitDurable() ABSL_LOCKS_EXCLUDED(mu_, sync_mu_);
  // Under Sync::kBatch, calls `done` on the journal's sync thread once every record written
  // before the call is on disk (with the sync's error, if it failed); otherwise calls it at once
  // on the caller's thread. Every `done` is called, at the latest by the destructor.
  void WhenDurable(std::function<void(absl::Status)> done) ABSL_LOCKS_EXCLUDED(pending_mu_);
  Sync sync() const { return sync_; }

  // Rewrites the journal without the contents of the trajectories that are no longer needed
  // (consumed or dropped): they keep an id record, so every id keeps its fate and the counts
  // stay; queued ones are kept whole, in order. Called after each checkpoint (no step in
  // progress), so the journal grows by ids, not by trajectories. Appends wait meanwhile.
  struct CompactStats {
    int64_t bytes_before = 0;
    int64_t bytes_after = 0;
    int64_t kept_whole = 0;  // queued trajectories
  };
  absl::StatusOr<CompactStats> Compact() ABSL_LOCKS_EXCLUDED(mu_, sync_mu_);

  const std::string& path() const { return path_; }

 private:
  TrajectoryJournal(std::string path, int fd, Sync sync)
      : path_(std::move(path)), sync_(sync), fd_(fd) {}
  absl::Status Append(Kind kind, const std::string& payload) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status WriteLocked(const std::string& record) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SyncLoop() ABSL_LOCKS_EXCLUDED(pending_mu_);
  bool SyncWanted() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(pending_mu_) {
    return stopping_ || !pending_.empty();
  }

  const std::string path_;
  const Sync sync_;
  // Lock order: sync_mu_ before mu_. sync_mu_ is held across a group commit's fdatasync, which
  // runs without mu_ (appends go on meanwhile); Compact, the only one to replace fd_, holds both.
  absl::Mutex sync_mu_;
  absl::Mutex mu_ ABSL_ACQUIRED_AFTER(sync_mu_);  // one record at a time
  int fd_ ABSL_GUARDED_BY(mu_);
  int64_t written_ ABSL_GUARDED_BY(mu_) = 0;      // records written since Open
  int64_t synced_ ABSL_GUARDED_BY(sync_mu_) = 0;  // of which known to be on disk
  // kBatch: the WhenDurable callbacks waiting for the sync thread.
  absl::Mutex pending_mu_;
  std::vector<std::function<void(absl::Status)>> pending_ ABSL_GUARDED_BY(pending_mu_);
  bool stopping_ ABSL_GUARDED_BY(pending_mu_) = false;
  std::thread sync_thread_;  // kBatch only
};

// What a journal says about every trajectory id it has seen.
struct JournalState {
  enum class Fate { kQueued, kConsumed, kStaleOnArrival, kStaleAtPop, kInvalid, kCancelled };
  struct Entry {
    Fate fate = Fate::kQueued;
    int64_t consumed_at_step = 0;  // for kConsumed
    int64_t accepted_order = -1;   // position among the accepted; -1 = never accepted
    int64_t offset = -1;           // of its 'A' record in the file
  };
  std::map<std::string, Entry> ids;
  int64_t duplicates = 0;        // 'D' records (resent trajectories, not new ones)
  int64_t consumed_twice = 0;    // consumption of an id already consumed by a surviving step
  int64_t consumed_unknown = 0;  // consumption of an id never accepted
  int64_t resumes = 0;
  int64_t last_step = 0;  // highest step consumed and not voided

  // Counts by fate.
  int64_t Count(Fate fate) const;
};

// Reads the journal at `path` (a missing file is an empty journal; a torn last record is
// ignored). With `queued`, also returns the trajectories accepted and still queued (neither
// consumed by a surviving step nor dropped), in acceptance order: what a resumed learner
// queues again. Errors: Internal for unreadable or corrupt files (with the offset).
absl::StatusOr<JournalState> ReadJournal(const std::string& path,
                                         std::vector<rlhf::v1::Trajectory>* queued = nullptr);
// The same on the journal's bytes, already read (`path` names it in errors).
absl::StatusOr<JournalState> ParseJournal(const std::string& data, const std::string& path,
                                          std::vector<rlhf::v1::Trajectory>* queued = nullptr);

}  // namespace rlhf::learner

#endif  // RLHF_SERVICES_LEARNER_TRAJECTORY_JOURNAL_H_
