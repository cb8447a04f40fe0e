#include "services/learner/trajectory_journal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/file/file.h"
#include "common/status/status_macros.h"
#include "glog/logging.h"

namespace rlhf::learner {
namespace {

constexpr size_t kHeader = 5;  // u32 length + kind
constexpr uint32_t kMaxPayload = 1u << 30;

void PutU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutU64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint64_t GetLE(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i)
    v |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

bool KnownKind(char k) { return std::strchr("ADISPXCRaU", k) != nullptr && k != '\0'; }

// The journal's bytes; a missing file is an empty journal. Internal for an unreadable file.
absl::StatusOr<std::string> ReadAll(const std::string& path) {
  absl::StatusOr<std::string> data = file::ReadFileToString(path);
  if (absl::IsNotFound(data.status())) return std::string();
  if (!data.ok()) return absl::InternalError(data.status().message());
  return data;
}

// fdatasync(2) of the journal's descriptor `fd`.
absl::Status SyncFile(int fd, const std::string& path) {
  if (fdatasync(fd) != 0) {
    return absl::InternalError(absl::StrCat("cannot sync ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

// Calls `fn(kind, payload, offset)` for each whole record; returns the length of the whole
// records (a torn tail is not counted). Internal for a corrupt record.
absl::StatusOr<size_t> ForEachRecord(
    const std::string& data, const std::string& path,
    const std::function<absl::Status(char, absl::string_view, size_t)>& fn) {
  size_t at = 0;
  while (data.size() - at >= kHeader) {
    const uint32_t len = static_cast<uint32_t>(GetLE(data.data() + at, 4));
    const char kind = data[at + 4];
    if (!KnownKind(kind) || len > kMaxPayload) {
      return absl::InternalError(absl::StrCat(path, ": corrupt record at offset ", at));
    }
    if (data.size() - at - kHeader < len) break;  // torn tail
    if (absl::Status s = fn(kind, absl::string_view(data).substr(at + kHeader, len), at); !s.ok()) {
      return s;
    }
    at += kHeader + len;
  }
  return at;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TrajectoryJournal>> TrajectoryJournal::Open(const std::string& path,
                                                                           Sync sync) {
  absl::StatusOr<std::string> data = ReadAll(path);
  if (!data.ok()) return data.status();
  absl::StatusOr<size_t> whole =
      ForEachRecord(*data, path, [](char, absl::string_view, size_t) { return absl::OkStatus(); });
  if (!whole.ok()) return whole.status();
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  }
  if (*whole != data->size() && ftruncate(fd, static_cast<off_t>(*whole)) != 0) {
    close(fd);
    return absl::InternalError(
        absl::StrCat("cannot cut the torn tail of ", path, ": ", std::strerror(errno)));
  }
  if (sync != Sync::kNone) {  // what an earlier run left unsynced
    if (absl::Status s = SyncFile(fd, path); !s.ok()) {
      close(fd);
      return s;
    }
  }
  std::unique_ptr<TrajectoryJournal> journal(new TrajectoryJournal(path, fd, sync));
  if (sync == Sync::kBatch) {
    journal->sync_thread_ = std::thread([j = journal.get()] { j->SyncLoop(); });
  }
  return journal;
}

TrajectoryJournal::~TrajectoryJournal() {
  if (sync_thread_.joinable()) {
    {
      absl::MutexLock lock(&pending_mu_);
      stopping_ = true;
    }
    sync_thread_.join();  // after calling every pending callback
  }
  absl::MutexLock lock(&mu_);
  close(fd_);
}

void TrajectoryJournal::WhenDurable(std::function<void(absl::Status)> done) {
  if (sync_ != Sync::kBatch) {
    done(absl::OkStatus());
    return;
  }
  absl::MutexLock lock(&pending_mu_);
  pending_.push_back(std::move(done));
}

void TrajectoryJournal::SyncLoop() {
  while (true) {
    std::vector<std::function<void(absl::Status)>> batch;
    {
      absl::MutexLock lock(&pending_mu_);
      pending_mu_.Await(absl::Condition(this, &TrajectoryJournal::SyncWanted));
      if (pending_.empty()) return;  // stopping, nothing left
      batch.swap(pending_);
    }
    // Covers every record written before its callback was queued.
    const absl::Status synced = AwaitDurable();
    if (!synced.ok()) LOG(ERROR) << "journal: " << synced;
    for (auto& done : batch) done(synced);
  }
}

namespace {

std::string Record(TrajectoryJournal::Kind kind, const std::string& payload) {
  std::string record;
  record.reserve(kHeader + payload.size());
  PutU32(&record, static_cast<uint32_t>(payload.size()));
  record.push_back(static_cast<char>(kind));
  record += payload;
  return record;
}

}  // namespace

absl::Status TrajectoryJournal::Append(Kind kind, const std::string& payload) {
  return Write(Record(kind, payload));
}

absl::Status TrajectoryJournal::Write(const std::string& record) {
  absl::MutexLock lock(&mu_);
  RLHF_RETURN_IF_ERROR(WriteLocked(record));
  return sync_ == Sync::kEvery ? SyncFile(fd_, path_) : absl::OkStatus();
}

absl::Status TrajectoryJournal::WriteLocked(const std::string& record) {
  size_t done = 0;
  while (done < record.size()) {
    const ssize_t n = write(fd_, record.data() + done, record.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return absl::InternalError(
          absl::StrCat("cannot append to ", path_, ": ", std::strerror(errno)));
    }
    done += static_cast<size_t>(n);
  }
  ++written_;
  return absl::OkStatus();
}


absl::Status TrajectoryJournal::AwaitDurable() {
  if (sync_ != Sync::kBatch) return absl::OkStatus();
  int64_t mine;
  {
    absl::MutexLock lock(&mu_);
    mine = written_;
  }
  // The first waiter syncs for everyone written by then; those queued behind it usually find
  // their record covered when they get the lock.
  absl::MutexLock sync_lock(&sync_mu_);
  if (synced_ >= mine) return absl::OkStatus();
  int fd;
  int64_t through;
  {
    absl::MutexLock lock(&mu_);
    fd = fd_;  // stays open: only Compact replaces it, and it takes sync_mu_ first
    through = written_;
  }
  RLHF_RETURN_IF_ERROR(SyncFile(fd, path_));
  synced_ = through;
  return absl::OkStatus();
}

std::string TrajectoryJournal::AcceptedRecord(const rlhf::v1::Trajectory& t) {
  std::string payload;
  t.SerializeToString(&payload);  // cannot fail for a message without required fields
  return Record(kAccepted, payload);
}

absl::Status TrajectoryJournal::Accepted(const rlhf::v1::Trajectory& t) {
  return Write(AcceptedRecord(t));
}

absl::Status TrajectoryJournal::Judged(Kind kind, const std::string& id) {
  return Append(kind, id);
}

absl::Status TrajectoryJournal::Consumed(int64_t step,
                                         const std::vector<rlhf::v1::Trajectory>& batch) {
  std::string payload;
  PutU64(&payload, static_cast<uint64_t>(step));
  for (const auto& t : batch) {
    PutU32(&payload, static_cast<uint32_t>(t.id().size()));
    payload += t.id();
  }
  RLHF_RETURN_IF_ERROR(Append(kConsumed, payload));
  return AwaitDurable();
}

absl::Status TrajectoryJournal::Resumed(int64_t step) {
  std::string payload;
  PutU64(&payload, static_cast<uint64_t>(step));
  RLHF_RETURN_IF_ERROR(Append(kResumed, payload));
  return AwaitDurable();
}

absl::StatusOr<TrajectoryJournal::CompactStats> TrajectoryJournal::Compact() {
  absl::MutexLock sync_lock(&sync_mu_);  // fd_ is replaced below
  absl::MutexLock lock(&mu_);            // no record is appended meanwhile
  CompactStats stats;
  absl::StatusOr<std::string> data = ReadAll(path_);
  if (!data.ok()) return data.status();
  stats.bytes_before = static_cast<int64_t>(data->size());
  absl::StatusOr<JournalState> state = ParseJournal(*data, path_);
  if (!state.ok()) return state.status();
  using Fate = JournalState::Fate;
  std::vector<std::pair<const std::string*, const JournalState::Entry*>> accepted;
  std::map<int64_t, std::vector<const std::string*>> consumed_by_step;
  std::string out;
  std::string summary;
  PutU64(&summary, static_cast<uint64_t>(state->duplicates));
  PutU64(&summary, static_cast<uint64_t>(state->resumes));
  PutU64(&summary, static_cast<uint64_t>(state->last_step));
  out += Record(kSummary, summary);
  for (const auto& [id, e] : state->ids) {
    if (e.accepted_order >= 0) accepted.emplace_back(&id, &e);
  }
  std::sort(accepted.begin(), accepted.end(), [](const auto& a, const auto& b) {
    return a.second->accepted_order < b.second->accepted_order;
  });
  for (const auto& [id, e] : accepted) {
    if (e->fate == Fate::kQueued) {
      if (e->offset < 0) {
        return absl::InternalError(absl::StrCat(path_, ": trajectory ", *id,
                                                " is queued again but its contents were dropped"));
      }
      // Still to be trained on: kept whole (the record copied as it is).
      const size_t at = static_cast<size_t>(e->offset);
      out.append(*data, at, kHeader + static_cast<size_t>(GetLE(data->data() + at, 4)));
      ++stats.kept_whole;
    } else {
      out += Record(kAcceptedCompacted, *id);
      if (e->fate == Fate::kConsumed) consumed_by_step[e->consumed_at_step].push_back(id);
    }
  }
  for (const auto& [step, ids] : consumed_by_step) {
    std::string payload;
    PutU64(&payload, static_cast<uint64_t>(step));
    for (const std::string* id : ids) {
      PutU32(&payload, static_cast<uint32_t>(id->size()));
      payload += *id;
    }
    out += Record(kConsumed, payload);
  }
  for (const auto& [id, e] : state->ids) {
    switch (e.fate) {
      case Fate::kStaleAtPop:
        out += Record(kStaleAtPop, id);
        break;
      case Fate::kStaleOnArrival:
        out += Record(kStaleOnArrival, id);
        break;
      case Fate::kInvalid:
        out += Record(kInvalid, id);
        break;
      case Fate::kCancelled:
        out += Record(kCancelled, id);
        break;
      case Fate::kQueued:
      case Fate::kConsumed:
        break;
    }
  }
  // Written aside, synced and renamed over the journal: a crash (or a power loss) leaves the old
  // one or the new one.
  if (absl::Status s = file::WriteFileAtomically(path_, out); !s.ok()) return s;
  const int fd = open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("cannot reopen ", path_, ": ", std::strerror(errno)));
  }
  close(fd_);
  fd_ = fd;
  synced_ = written_;  // WriteFileAtomically synced the new file whole
  stats.bytes_after = static_cast<int64_t>(out.size());
  return stats;
}

int64_t JournalState::Count(Fate fate) const {
  int64_t n = 0;
  for (const auto& [id, e] : ids) n += e.fate == fate ? 1 : 0;
  return n;
}

absl::StatusOr<JournalState> ReadJournal(const std::string& path,
                                         std::vector<rlhf::v1::Trajectory>* queued) {
  absl::StatusOr<std::string> data = ReadAll(path);
  if (!data.ok()) return data.status();
  return ParseJournal(*data, path, queued);
}

absl::StatusOr<JournalState> ParseJournal(const std::string& data, const std::string& path,
                                          std::vector<rlhf::v1::Trajectory>* queued) {
  JournalState state;
  int64_t accepted = 0;
  auto corrupt = [&](size_t offset) {
    return absl::InternalError(absl::StrCat(path, ": corrupt record at offset ", offset));
  };
  absl::StatusOr<size_t> whole = ForEachRecord(
      data, path, [&](char kind, absl::string_view payload, size_t offset) -> absl::Status {
        using Fate = JournalState::Fate;
        switch (kind) {
          case TrajectoryJournal::kAccepted: {
            rlhf::v1::Trajectory t;
            if (!t.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
              return corrupt(offset);
            }
            JournalState::Entry& e = state.ids[t.id()];
            e.fate = Fate::kQueued;
            e.accepted_order = accepted++;
            e.offset = static_cast<int64_t>(offset);
            return absl::OkStatus();
          }
          case TrajectoryJournal::kAcceptedCompacted: {
            JournalState::Entry& e = state.ids[std::string(payload)];
            e.fate = Fate::kQueued;
            e.accepted_order = accepted++;
            e.offset = -1;  // its contents were dropped: it was consumed or dropped already
            return absl::OkStatus();
          }
          case TrajectoryJournal::kSummary: {
            if (payload.size() != 24) return corrupt(offset);
            // Counts a real run can reach; more is a corrupt file (and would overflow the sums).
            constexpr uint64_t kMaxCount = uint64_t{1} << 48;
            const uint64_t duplicates = GetLE(payload.data(), 8);
            const uint64_t resumes = GetLE(payload.data() + 8, 8);
            const uint64_t last_step = GetLE(payload.data() + 16, 8);
            if (duplicates > kMaxCount || resumes > kMaxCount || last_step > kMaxCount ||
                state.duplicates > static_cast<int64_t>(kMaxCount) ||
                state.resumes > static_cast<int64_t>(kMaxCount)) {
              return corrupt(offset);
            }
            state.duplicates += static_cast<int64_t>(duplicates);
            state.resumes += static_cast<int64_t>(resumes);
            state.last_step = std::max(state.last_step, static_cast<int64_t>(last_step));
            return absl::OkStatus();
          }
          case TrajectoryJournal::kDuplicate:
            ++state.duplicates;
            return absl::OkStatus();
          case TrajectoryJournal::kInvalid:
          case TrajectoryJournal::kStaleOnArrival:
          case TrajectoryJournal::kStaleAtPop:
          case TrajectoryJournal::kCancelled: {
            JournalState::Entry& e = state.ids[std::string(payload)];
            e.fate = kind == TrajectoryJournal::kInvalid          ? Fate::kInvalid
                     : kind == TrajectoryJournal::kStaleOnArrival ? Fate::kStaleOnArrival
                     : kind == TrajectoryJournal::kStaleAtPop     ? Fate::kStaleAtPop
                                                                  : Fate::kCancelled;
            return absl::OkStatus();
          }
          case TrajectoryJournal::kConsumed: {
            if (payload.size() < 8) return corrupt(offset);
            const int64_t step = static_cast<int64_t>(GetLE(payload.data(), 8));
            size_t at = 8;
            while (at < payload.size()) {
              if (payload.size() - at < 4) return corrupt(offset);
              const size_t len = static_cast<size_t>(GetLE(payload.data() + at, 4));
              at += 4;
              if (payload.size() - at < len) return corrupt(offset);
              const std::string id(payload.substr(at, len));
              at += len;
              auto it = state.ids.find(id);
              if (it == state.ids.end() || it->second.accepted_order < 0) {
                ++state.consumed_unknown;
                continue;
              }
              if (it->second.fate == Fate::kConsumed) ++state.consumed_twice;
              it->second.fate = Fate::kConsumed;
              it->second.consumed_at_step = step;
            }
            state.last_step = std::max(state.last_step, step);
            return absl::OkStatus();
          }
          case TrajectoryJournal::kResumed: {
            if (payload.size() != 8) return corrupt(offset);
            const int64_t step = static_cast<int64_t>(GetLE(payload.data(), 8));
            for (auto& [id, e] : state.ids) {
              if (e.fate == Fate::kConsumed && e.consumed_at_step > step) e.fate = Fate::kQueued;
            }
            state.last_step = step;
            ++state.resumes;
            return absl::OkStatus();
          }
          default:
            return corrupt(offset);
        }
      });
  if (!whole.ok()) return whole.status();
  if (queued != nullptr) {
    std::vector<const JournalState::Entry*> pending;
    for (const auto& [id, e] : state.ids) {
      if (e.fate == JournalState::Fate::kQueued && e.offset >= 0) pending.push_back(&e);
    }
    std::sort(pending.begin(), pending.end(),
              [](const auto* a, const auto* b) { return a->accepted_order < b->accepted_order; });
    queued->clear();
    for (const auto* e : pending) {
      const size_t at = static_cast<size_t>(e->offset);
      const uint32_t len = static_cast<uint32_t>(GetLE(data.data() + at, 4));
      rlhf::v1::Trajectory t;
      if (!t.ParseFromArray(data.data() + at + kHeader, static_cast<int>(len))) {
        return corrupt(at);
      }
      queued->push_back(std::move(t));
    }
  }
  return state;
}

}  // namespace rlhf::learner
