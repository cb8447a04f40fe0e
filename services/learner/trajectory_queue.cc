// Implementation of the trajectory queue: validation, dedup, parking and ack delivery.
#include "services/learner/trajectory_queue.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status/status_macros.h"
#include "glog/logging.h"

namespace rlhf::learner {
namespace {

using rlhf::v1::Ack;
using rlhf::v1::Trajectory;

// Log-probs are <= 0; this much above 0 is tolerated as float rounding.
constexpr float kMaxLogProb = 1e-3f;

absl::Status Invalid(const Trajectory& t, const std::string& what) {
  return absl::InvalidArgumentError(
      absl::StrCat("trajectory ", t.id().empty() ? "(no id)" : t.id(), ": ", what));
}

absl::Status CheckTokens(const Trajectory& t, const char* field,
                         const google::protobuf::RepeatedField<int64_t>& tokens,
                         int64_t vocab_size) {
  if (tokens.empty()) return Invalid(t, absl::StrCat(field, " is empty"));
  for (int i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= vocab_size) {
      return Invalid(
          t, absl::StrCat(field, "[", i, "] = ", tokens[i], " is outside [0, ", vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckLogProbs(const Trajectory& t, const char* field,
                           const google::protobuf::RepeatedField<float>& logprobs) {
  if (logprobs.size() != t.response_tokens_size()) {
    return Invalid(t, absl::StrCat(field, " has ", logprobs.size(), " entries for ",
                                   t.response_tokens_size(), " response tokens"));
  }
  for (int i = 0; i < logprobs.size(); ++i) {
    if (!std::isfinite(logprobs[i]) || logprobs[i] > kMaxLogProb) {
      return Invalid(t, absl::StrCat(field, "[", i, "] = ", logprobs[i],
                                     " is not a log-probability (finite, <= 0)"));
    }
  }
  return absl::OkStatus();
}

Ack MakeAck(const std::string& id, Ack::Outcome outcome, std::string message = "") {
  Ack ack;
  ack.set_trajectory_id(id);
  ack.set_outcome(outcome);
  ack.set_message(std::move(message));
  return ack;
}

// A journal failure as the Offer's error: the trajectory is refused, and its producer resends it.
absl::Status Unavailable(const absl::Status& journaled) {
  if (journaled.ok()) return journaled;
  return absl::UnavailableError(absl::StrCat("the learner cannot journal: ", journaled.message()));
}

std::string GroupKey(const Trajectory& t) {
  return TrajectoryGroupKey(t.lease_id(), t.prompt_index());
}

}  // namespace

std::string TrajectoryGroupKey(const std::string& lease_id, int64_t prompt_index) {
  return absl::StrCat(lease_id, "#", prompt_index);
}

absl::Status ValidateTrajectory(const Trajectory& t, int64_t vocab_size, int64_t max_seq_len) {
  if (t.id().empty()) return Invalid(t, "id is empty");
  RLHF_RETURN_IF_ERROR(CheckTokens(t, "prompt_tokens", t.prompt_tokens(), vocab_size));
  RLHF_RETURN_IF_ERROR(CheckTokens(t, "response_tokens", t.response_tokens(), vocab_size));
  const int64_t len = int64_t{t.prompt_tokens_size()} + t.response_tokens_size();
  if (len > max_seq_len) {
    return Invalid(t, absl::StrCat("prompt_tokens + response_tokens = ", len,
                                   " tokens exceed max_seq_len ", max_seq_len));
  }
  RLHF_RETURN_IF_ERROR(CheckLogProbs(t, "behaviour_logprobs", t.behaviour_logprobs()));
  RLHF_RETURN_IF_ERROR(CheckLogProbs(t, "ref_logprobs", t.ref_logprobs()));
  if (!std::isfinite(t.reward())) {
    return Invalid(t, absl::StrCat("reward = ", t.reward(), " is not finite"));
  }
  if (t.policy_version() < 0) {
    return Invalid(t, absl::StrCat("policy_version = ", t.policy_version(), " is negative"));
  }
  return absl::OkStatus();
}

absl::Status Validate(const TrajectoryQueueOptions& o) {
  if (o.group_size < 1 || o.group_size > o.capacity) {
    return absl::InvalidArgumentError(absl::StrCat(
        "trajectory queue needs 1 <= group_size <= capacity; got group_size=", o.group_size,
        " capacity=", o.capacity));
  }
  if (o.capacity < 1 || o.vocab_size < 1 || o.max_seq_len < 2 || o.max_policy_lag < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("trajectory queue needs capacity >= 1, vocab_size >= 1, max_seq_len >= 2, "
                     "max_policy_lag >= 0; got capacity=",
                     o.capacity, " vocab_size=", o.vocab_size, " max_seq_len=", o.max_seq_len,
                     " max_policy_lag=", o.max_policy_lag));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<TrajectoryQueue>> TrajectoryQueue::Create(
    const TrajectoryQueueOptions& options) {
  RLHF_RETURN_IF_ERROR(Validate(options));
  return std::unique_ptr<TrajectoryQueue>(new TrajectoryQueue(options));
}

TrajectoryQueue::TrajectoryQueue(const TrajectoryQueueOptions& options) : options_(options) {}

bool TrajectoryQueue::IsStale(const Trajectory& t, int64_t current_version) const {
  return current_version - t.policy_version() > options_.max_policy_lag;
}

absl::Status TrajectoryQueue::Judge(const Trajectory& t, int64_t current_version) const {
  RLHF_RETURN_IF_ERROR(ValidateTrajectory(t, options_.vocab_size, options_.max_seq_len));
  // A version no one has published: a worker bug, or a peer of another run.
  if (current_version >= 0 && t.policy_version() > current_version) {
    return Invalid(t, absl::StrCat("policy_version = ", t.policy_version(),
                                   " is newer than the newest published version ",
                                   current_version));
  }
  if (options_.check) {
    if (absl::Status s = options_.check(t); !s.ok()) return Invalid(t, std::string(s.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<TrajectoryQueue::OfferResult> TrajectoryQueue::Offer(Trajectory t,
                                                                    int64_t current_version,
                                                                    Waiter* waiter) {
  // Validation reads only `t`: done before taking the lock, as is the journal record of a
  // trajectory that may be accepted (so that the lock covers only the append).
  const absl::Status valid = Judge(t, current_version);
  const bool stale = IsStale(t, current_version);
  const std::string accepted_record = options_.journal != nullptr && valid.ok() && !stale
                                          ? TrajectoryJournal::AcceptedRecord(t)
                                          : std::string();
  OfferResult result;
  absl::MutexLock lock(&mu_);
  if (closed_) return absl::UnavailableError("trajectory queue closed: the learner is stopping");
  if (waiter != nullptr && std::any_of(parked_.begin(), parked_.end(),
                                       [waiter](const Parked& p) { return p.waiter == waiter; })) {
    return absl::FailedPreconditionError("this producer already has a parked trajectory");
  }
  const std::string& id = t.id();
  TrajectoryJournal* const journal = options_.journal;
  // A trajectory of a group that was dropped can no longer be trained on: STALE.
  const bool voided =
      options_.group_size > 1 && valid.ok() && !stale && voided_.count(GroupKey(t)) > 0;
  if (!id.empty() && seen_ids_.contains(IdHash(id))) {
    if (journal != nullptr)
      RLHF_RETURN_IF_ERROR(Unavailable(journal->Judged(TrajectoryJournal::kDuplicate, id)));
    ++ledger_.received;
    ++ledger_.duplicate;
    result.ack = MakeAck(id, Ack::DUPLICATE, "already received");
    return result;
  }
  const bool room = queue_.size() < static_cast<size_t>(options_.capacity);
  if (valid.ok() && !stale && !voided && !room && waiter == nullptr) {
    return absl::ResourceExhaustedError(absl::StrCat("trajectory queue full (", options_.capacity,
                                                     " waiting) and no waiter to park with"));
  }
  if (journal != nullptr && !id.empty()) {
    absl::Status journaled = !valid.ok() ? journal->Judged(TrajectoryJournal::kInvalid, id)
                             : stale || voided
                                 ? journal->Judged(TrajectoryJournal::kStaleOnArrival, id)
                             : room ? journal->Write(accepted_record)
                                    : absl::OkStatus();  // parked: journaled when admitted
    RLHF_RETURN_IF_ERROR(Unavailable(journaled));
  }
  ++ledger_.received;
  if (!id.empty()) seen_ids_.insert(IdHash(id));
  if (!valid.ok()) {
    ++ledger_.invalid;
    result.ack = MakeAck(id, Ack::INVALID, std::string(valid.message()));
  } else if (stale) {
    ++ledger_.stale_on_arrival;
    result.ack =
        MakeAck(id, Ack::STALE,
                absl::StrCat("policy_version ", t.policy_version(), " is ",
                             current_version - t.policy_version(), " behind ", current_version,
                             "; max_policy_lag is ", options_.max_policy_lag));
  } else if (voided) {
    ++ledger_.stale_on_arrival;
    result.ack =
        MakeAck(id, Ack::STALE,
                absl::StrCat("its group (lease ", t.lease_id(), ", prompt ", t.prompt_index(),
                             ") was dropped: its lease ended or a "
                             "member went stale before the group was complete"));
  } else if (room) {
    ++ledger_.accepted;
    result.ack = MakeAck(id, Ack::ACCEPTED);
    Enqueue(std::move(t));
  } else {
    result.blocked = true;
    parked_.push_back(Parked{std::move(t), waiter});
  }
  return result;
}

void TrajectoryQueue::Cancel(Waiter* waiter) {
  absl::MutexLock lock(&mu_);
  // Wait out a call of `waiter` on another thread (a call on this thread is the caller itself:
  // Cancel from inside OnAccepted). The call may have parked a new trajectory: swept below.
  if (!(delivering_ && delivering_thread_ == std::this_thread::get_id())) {
    struct Args {
      TrajectoryQueue* q;
      Waiter* w;
    } args{this, waiter};
    mu_.Await(absl::Condition(
        +[](Args* a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(a->q->mu_) { return a->q->calling_ != a->w; },
        &args));
  }
  for (auto it = parked_.begin(); it != parked_.end();) {
    if (it->waiter == waiter) {
      ++ledger_.cancelled;
      Journal(TrajectoryJournal::kCancelled, it->trajectory.id());
      it = parked_.erase(it);
    } else {
      ++it;
    }
  }
  // Acks of trajectories already admitted are not delivered (the trajectory stays accepted;
  // a producer that resends it gets DUPLICATE).
  notes_.erase(std::remove_if(notes_.begin(), notes_.end(),
                              [waiter](const Note& n) { return n.waiter == waiter; }),
               notes_.end());
}

std::vector<Trajectory> TrajectoryQueue::PopBatch(int n, int64_t current_version,
                                                  absl::Duration timeout) {
  std::vector<Trajectory> out;
  if (n <= 0) return out;
  {
    absl::MutexLock lock(&mu_);
    const int k = options_.group_size;
    struct Args {
      TrajectoryQueue* q;
      size_t want;
    } args{this, static_cast<size_t>(std::min(n, options_.capacity) / k * k)};
    if (args.want == 0) return out;  // less than a group asked for
    // Without groups every queued trajectory is ready.
    mu_.AwaitWithTimeout(absl::Condition(
                             +[](Args* a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(a->q->mu_) {
                               const size_t ready = a->q->options_.group_size > 1
                                                        ? static_cast<size_t>(a->q->ready_)
                                                        : a->q->queue_.size();
                               return a->q->closed_ || ready >= a->want;
                             },
                             &args),
                         timeout);
    if (k > 1) PopGroups(n, current_version, &out);
    while (k == 1 && out.size() < static_cast<size_t>(n) && !queue_.empty()) {
      Trajectory t = std::move(queue_.front());
      queue_.pop_front();
      AdmitParked();
      if (IsStale(t, current_version)) {
        ++ledger_.stale_at_pop;
        Journal(TrajectoryJournal::kStaleAtPop, t.id());
      } else {
        ++ledger_.consumed;
        ++taken_;
        out.push_back(std::move(t));
      }
    }
  }
  DeliverNotes();
  return out;
}

void TrajectoryQueue::AdmitParked() {
  while (!parked_.empty() && queue_.size() < static_cast<size_t>(options_.capacity)) {
    Parked p = std::move(parked_.front());
    parked_.pop_front();
    if (options_.journal != nullptr) {
      // The producer is waiting for this ack; a journal that fails now is logged (the acceptance
      // would then be lost with a learner crash, like an unjournaled one).
      absl::Status s = options_.journal->Accepted(p.trajectory);
      if (!s.ok()) LOG(ERROR) << "journal: " << s;
    }
    ++ledger_.accepted;
    notes_.push_back(Note{p.waiter, MakeAck(p.trajectory.id(), Ack::ACCEPTED)});
    if (options_.group_size > 1 && voided_.count(GroupKey(p.trajectory)) > 0) {
      DropAtPop(p.trajectory);  // its group was dropped while it was parked
      continue;
    }
    Enqueue(std::move(p.trajectory));
  }
}

void TrajectoryQueue::Enqueue(Trajectory t) {
  const int k = options_.group_size;
  if (k > 1 && ++group_members_[GroupKey(t)] % k == 0) ready_ += k;
  queue_.push_back(std::move(t));
}

void TrajectoryQueue::Recount() {
  const int k = options_.group_size;
  group_members_.clear();
  ready_ = 0;
  if (k == 1) return;
  for (const Trajectory& t : queue_) {
    if (++group_members_[GroupKey(t)] % k == 0) ready_ += k;
  }
}

void TrajectoryQueue::DropAtPop(const Trajectory& t) {
  ++ledger_.stale_at_pop;
  Journal(TrajectoryJournal::kStaleAtPop, t.id());
}

void TrajectoryQueue::RememberVoided(const std::string& key) {
  if (!voided_.insert(key).second) return;
  voided_order_.push_back(key);
  while (voided_order_.size() > static_cast<size_t>(kRememberedVoidedGroups)) {
    voided_.erase(voided_order_.front());
    voided_order_.pop_front();
  }
}

int TrajectoryQueue::DropIncomplete(const std::string& key) {
  auto it = group_members_.find(key);
  if (it == group_members_.end()) return 0;
  int extra = it->second % options_.group_size;
  const int dropped = extra;
  for (auto t = queue_.end(); extra > 0 && t != queue_.begin();) {
    --t;
    if (GroupKey(*t) != key) continue;
    DropAtPop(*t);
    t = queue_.erase(t);
    --extra;
  }
  it->second -= dropped;
  if (it->second == 0) group_members_.erase(it);
  return dropped;
}

int TrajectoryQueue::VoidGroup(const std::string& lease_id, int64_t prompt_index) {
  if (options_.group_size == 1) return 0;
  int dropped = 0;
  {
    absl::MutexLock lock(&mu_);
    const std::string key = TrajectoryGroupKey(lease_id, prompt_index);
    RememberVoided(key);
    dropped = DropIncomplete(key);
    AdmitParked();
  }
  DeliverNotes();
  return dropped;
}

void TrajectoryQueue::PopGroups(int n, int64_t current_version, std::vector<Trajectory>* out) {
  const size_t k = static_cast<size_t>(options_.group_size);
  const size_t size = queue_.size();
  // 1. The groups in queue order: each key's members k at a time; a group forms at its k-th.
  std::unordered_map<std::string, std::vector<size_t>> open;
  std::vector<std::vector<size_t>> formed;
  for (size_t i = 0; i < size; ++i) {
    std::vector<size_t>& members = open[GroupKey(queue_[i])];
    members.push_back(i);
    if (members.size() == k) {
      formed.push_back(std::move(members));
      members.clear();
    }
  }
  auto any_stale = [&](const std::vector<size_t>& members) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return std::any_of(members.begin(), members.end(),
                       [&](size_t i) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                         return IsStale(queue_[i], current_version);
                       });
  };
  enum Fate : char { kKeep, kTake, kDrop };
  std::vector<char> fate(size, kKeep);
  std::vector<const std::vector<size_t>*> taken;
  size_t room = static_cast<size_t>(n);
  for (const std::vector<size_t>& group : formed) {
    if (room < k) break;
    const bool stale = any_stale(group);
    for (size_t i : group) fate[i] = stale ? kDrop : kTake;
    if (!stale) {
      taken.push_back(&group);
      room -= k;
    }
  }
  // 2. An incomplete group with a stale member can never be trained on.
  for (const auto& [key, members] : open) {
    if (members.empty() || !any_stale(members)) continue;
    for (size_t i : members) fate[i] = kDrop;
    RememberVoided(key);
  }
  // 3. Out go the taken groups, each one's members together; the rest stays in order.
  for (const std::vector<size_t>* group : taken) {
    for (size_t i : *group) out->push_back(std::move(queue_[i]));
  }
  ledger_.consumed += static_cast<int64_t>(out->size());
  taken_ += static_cast<int64_t>(out->size());
  std::deque<Trajectory> rest;
  for (size_t i = 0; i < size; ++i) {
    if (fate[i] == kDrop) DropAtPop(queue_[i]);
    if (fate[i] == kKeep) rest.push_back(std::move(queue_[i]));
  }
  queue_.swap(rest);
  Recount();
  AdmitParked();
}

void TrajectoryQueue::DeliverNotes() {
  mu_.Lock();
  if (delivering_) {  // that thread delivers ours too, in order
    mu_.Unlock();
    return;
  }
  delivering_ = true;
  delivering_thread_ = std::this_thread::get_id();
  while (!notes_.empty()) {
    Note note = std::move(notes_.front());
    notes_.pop_front();
    calling_ = note.waiter;
    mu_.Unlock();
    AwaitJournal();  // AdmitParked journaled its acceptance
    note.waiter->OnAccepted(note.ack);
    mu_.Lock();
    calling_ = nullptr;
  }
  delivering_ = false;
  delivering_thread_ = std::thread::id();
  mu_.Unlock();
}

void TrajectoryQueue::WhenJournaled(std::function<void()> send) const {
  if (options_.journal == nullptr) {
    send();
    return;
  }
  options_.journal->WhenDurable([send = std::move(send)](const absl::Status&) { send(); });
}

void TrajectoryQueue::AwaitJournal() const {
  if (options_.journal == nullptr) return;
  absl::Status s = options_.journal->AwaitDurable();
  if (!s.ok()) LOG(ERROR) << "journal: " << s;
}

void TrajectoryQueue::Journal(TrajectoryJournal::Kind kind, const std::string& id) {
  if (options_.journal == nullptr || id.empty()) return;
  absl::Status s = options_.journal->Judged(kind, id);
  if (!s.ok()) LOG(ERROR) << "journal: " << s;
}

void TrajectoryQueue::Restore(std::vector<Trajectory> queued, const std::vector<std::string>& seen,
                              const TrajectoryLedger& ledger) {
  absl::MutexLock lock(&mu_);
  for (const std::string& id : seen) seen_ids_.insert(IdHash(id));
  ledger_ = ledger;
  ledger_.queued = 0;
  ledger_.parked = 0;
  ledger_.held = 0;
  std::vector<std::string> keys;  // in queue order, for a deterministic journal
  for (auto& t : queued) {
    if (options_.group_size > 1) keys.push_back(GroupKey(t));
    Enqueue(std::move(t));
  }
  // Incomplete groups belong to leases of the learner that died: dropped (see Groups).
  for (const std::string& key : keys) {
    auto it = group_members_.find(key);
    if (it == group_members_.end() || it->second % options_.group_size == 0) continue;
    RememberVoided(key);
    DropIncomplete(key);
  }
}

void TrajectoryQueue::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
}

TrajectoryLedger TrajectoryQueue::Ledger() const {
  absl::MutexLock lock(&mu_);
  TrajectoryLedger l = ledger_;
  l.queued = static_cast<int64_t>(queue_.size());
  l.parked = static_cast<int64_t>(parked_.size());
  l.held = options_.group_size > 1 ? l.queued - ready_ : 0;
  return l;
}

int64_t TrajectoryQueue::size() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(queue_.size());
}

int64_t TrajectoryQueue::QueuedOrTaken() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(queue_.size()) + taken_;
}

void TrajectoryQueue::ReleaseTaken() {
  absl::MutexLock lock(&mu_);
  taken_ = 0;
}

}  // namespace rlhf::learner
