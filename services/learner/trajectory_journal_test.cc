// Tests of the learner's trajectory journal: records written by a real TrajectoryQueue read back
// with the same counts as the queue's ledger, a torn tail cut off, a resume voiding the steps
// after its checkpoint (their trajectories queued again, in order), corrupt files refused, and
// the run ledger against workers' generated logs.
#include "services/learner/trajectory_journal.h"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/learner/run_ledger.h"
#include "services/learner/trajectory_queue.h"
#include "services/learner/trajectory_test_util.h"

namespace rlhf::learner {
namespace {

namespace fs = std::filesystem;
using rlhf::v1::Trajectory;
using Fate = JournalState::Fate;
using testing::MakeTrajectory;

// Fails validation: a token id outside the queue's vocabulary of 100.
Trajectory InvalidTrajectory(const std::string& id) {
  Trajectory t = MakeTrajectory(id);
  t.set_response_tokens(0, 999);
  return t;
}

std::string TempPath(const std::string& name) {
  const std::string dir = absl::StrCat(::testing::TempDir(), "/journal_test_", getpid());
  fs::create_directories(dir);
  const std::string path = dir + "/" + name;
  fs::remove(path);
  return path;
}

std::vector<std::string> Ids(const std::vector<Trajectory>& ts) {
  std::vector<std::string> ids;
  for (const auto& t : ts) ids.push_back(t.id());
  return ids;
}

struct QueueWithJournal {
  explicit QueueWithJournal(const std::string& path, int capacity = 8,
                            TrajectoryJournal::Sync sync = TrajectoryJournal::Sync::kNone) {
    auto j = TrajectoryJournal::Open(path, sync);
    EXPECT_TRUE(j.ok()) << j.status();
    journal = std::move(j).value();
    TrajectoryQueueOptions o;
    o.capacity = capacity;
    o.vocab_size = 100;
    o.max_seq_len = 16;
    o.max_policy_lag = 1;
    o.journal = journal.get();
    auto q = TrajectoryQueue::Create(o);
    EXPECT_TRUE(q.ok()) << q.status();
    queue = std::move(q).value();
  }
  std::unique_ptr<TrajectoryJournal> journal;
  std::unique_ptr<TrajectoryQueue> queue;
};

TEST(TrajectoryJournalTest, RecordsEveryVerdictWithTheQueuesCounts) {
  const std::string path = TempPath("verdicts");
  QueueWithJournal f(path);
  ASSERT_TRUE(f.journal->Resumed(0).ok());
  for (const char* id : {"a", "b", "c", "d"})
    ASSERT_TRUE(f.queue->Offer(MakeTrajectory(id), 0, nullptr).ok());
  ASSERT_TRUE(f.queue->Offer(MakeTrajectory("a"), 0, nullptr).ok());       // duplicate
  ASSERT_TRUE(f.queue->Offer(InvalidTrajectory("bad"), 0, nullptr).ok());  // invalid
  ASSERT_TRUE(f.queue->Offer(MakeTrajectory("old", 0), 5, nullptr).ok());  // stale on arrival
  auto batch = f.queue->PopBatch(2, 0, absl::ZeroDuration());
  ASSERT_EQ(Ids(batch), (std::vector<std::string>{"a", "b"}));
  ASSERT_TRUE(f.journal->Consumed(1, batch).ok());
  // "c" and "d" were accepted at version 0; at version 2 they are stale when popped.
  EXPECT_TRUE(f.queue->PopBatch(2, 2, absl::ZeroDuration()).empty());

  auto state = ReadJournal(path);
  ASSERT_TRUE(state.ok()) << state.status();
  const TrajectoryLedger l = f.queue->Ledger();
  EXPECT_EQ(state->Count(Fate::kConsumed), l.consumed);
  EXPECT_EQ(state->Count(Fate::kStaleAtPop), l.stale_at_pop);
  EXPECT_EQ(state->Count(Fate::kStaleOnArrival), l.stale_on_arrival);
  EXPECT_EQ(state->Count(Fate::kInvalid), l.invalid);
  EXPECT_EQ(state->duplicates, l.duplicate);
  EXPECT_EQ(state->Count(Fate::kQueued), 0);
  EXPECT_EQ(l.consumed, 2);
  EXPECT_EQ(l.stale_at_pop, 2);
  EXPECT_EQ(state->ids.at("a").consumed_at_step, 1);
  EXPECT_EQ(state->consumed_twice, 0);
  EXPECT_EQ(state->resumes, 1);
}

TEST(TrajectoryJournalTest, ParkedThenAdmittedOrCancelledAreJournaled) {
  const std::string path = TempPath("parked");
  QueueWithJournal f(path, /*capacity=*/1);
  struct NullWaiter : TrajectoryQueue::Waiter {
    void OnAccepted(const rlhf::v1::Ack&) override {}
  } w1, w2;
  ASSERT_TRUE(f.queue->Offer(MakeTrajectory("a"), 0, &w1).ok());
  auto parked = f.queue->Offer(MakeTrajectory("b"), 0, &w1);
  ASSERT_TRUE(parked.ok() && parked->blocked);
  EXPECT_EQ(Ids(f.queue->PopBatch(1, 0, absl::ZeroDuration())), std::vector<std::string>{"a"});
  auto parked2 = f.queue->Offer(MakeTrajectory("c"), 0, &w2);  // "b" was admitted: queue full
  ASSERT_TRUE(parked2.ok() && parked2->blocked);
  f.queue->Cancel(&w2);
  auto state = ReadJournal(path);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->ids.at("b").fate, Fate::kQueued);
  EXPECT_EQ(state->ids.at("b").accepted_order, 1);
  EXPECT_EQ(state->ids.at("c").fate, Fate::kCancelled);
  EXPECT_EQ(state->ids.at("c").accepted_order, -1);
}

TEST(TrajectoryJournalTest, AResumeQueuesAgainWhatLostStepsConsumedInOrder) {
  const std::string path = TempPath("resume");
  {
    QueueWithJournal f(path);
    ASSERT_TRUE(f.journal->Resumed(0).ok());
    for (int i = 0; i < 7; ++i) {
      ASSERT_TRUE(f.queue->Offer(MakeTrajectory(absl::StrCat("t", i)), 0, nullptr).ok());
    }
    for (int step = 1; step <= 3; ++step) {
      auto batch = f.queue->PopBatch(2, 0, absl::ZeroDuration());
      ASSERT_TRUE(f.journal->Consumed(step, batch).ok());
    }
  }
  // The learner died after step 3; its checkpoint is step 1.
  auto reopened = TrajectoryJournal::Open(path);
  ASSERT_TRUE(reopened.ok());
  ASSERT_TRUE((*reopened)->Resumed(1).ok());
  std::vector<Trajectory> queued;
  auto state = ReadJournal(path, &queued);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(Ids(queued), (std::vector<std::string>{"t2", "t3", "t4", "t5", "t6"}));
  EXPECT_EQ(state->Count(Fate::kConsumed), 2);
  EXPECT_EQ(state->last_step, 1);
  // Consumed again by the steps after the resume: nothing is consumed twice.
  std::vector<Trajectory> step2(queued.begin(), queued.begin() + 2);
  ASSERT_TRUE((*reopened)->Consumed(2, step2).ok());
  state = ReadJournal(path);
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->consumed_twice, 0);
  EXPECT_EQ(state->Count(Fate::kConsumed), 4);
  // Consuming a surviving step's trajectory again is caught.
  ASSERT_TRUE((*reopened)->Consumed(3, step2).ok());
  state = ReadJournal(path);
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->consumed_twice, 2);
}

TEST(TrajectoryJournalTest, ATornTailIsCutOffAndCorruptionIsAnError) {
  const std::string path = TempPath("torn");
  {
    auto j = TrajectoryJournal::Open(path);
    ASSERT_TRUE(j.ok());
    ASSERT_TRUE((*j)->Accepted(MakeTrajectory("x")).ok());
    ASSERT_TRUE((*j)->Accepted(MakeTrajectory("y")).ok());
  }
  const auto size = fs::file_size(path);
  fs::resize_file(path, size - 3);  // the process died in the middle of "y"
  auto state = ReadJournal(path);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->ids.size(), 1u);
  {
    auto j = TrajectoryJournal::Open(path);  // cuts the tail, appends after "x"
    ASSERT_TRUE(j.ok());
    ASSERT_TRUE((*j)->Accepted(MakeTrajectory("z")).ok());
  }
  std::vector<Trajectory> queued;
  state = ReadJournal(path, &queued);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(Ids(queued), (std::vector<std::string>{"x", "z"}));

  std::ofstream(path, std::ios::app) << std::string("\x02\x00\x00\x00Qxx", 7);
  auto corrupt = ReadJournal(path);
  EXPECT_EQ(corrupt.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(corrupt.status().message()), ::testing::HasSubstr("corrupt record"));
  EXPECT_FALSE(TrajectoryJournal::Open(path).ok());
  // A missing journal is an empty one.
  auto missing = ReadJournal(TempPath("missing"));
  ASSERT_TRUE(missing.ok());
  EXPECT_TRUE(missing->ids.empty());
}

TEST(TrajectoryJournalTest, RecordsSurviveAKilledProcessAndAppendingGoesOn) {
  const std::string path = TempPath("killed");
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {  // writes two records and dies without closing anything
    auto j = TrajectoryJournal::Open(path);
    if (!j.ok() || !(*j)->Accepted(MakeTrajectory("a")).ok() ||
        !(*j)->Judged(TrajectoryJournal::kDuplicate, "a").ok()) {
      _exit(1);
    }
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  auto state = ReadJournal(path);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->ids.size(), 1u);
  EXPECT_EQ(state->duplicates, 1);
  {
    auto j = TrajectoryJournal::Open(path);
    ASSERT_TRUE(j.ok()) << j.status();
    ASSERT_TRUE((*j)->Accepted(MakeTrajectory("b")).ok());
  }
  std::vector<Trajectory> queued;
  state = ReadJournal(path, &queued);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(Ids(queued), (std::vector<std::string>{"a", "b"}));
}

TEST(TrajectoryJournalTest, CompactionKeepsEveryFateAndTheQueuedTrajectories) {
  const std::string path = TempPath("compact");
  QueueWithJournal f(path);
  ASSERT_TRUE(f.journal->Resumed(0).ok());
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(f.queue->Offer(MakeTrajectory(absl::StrCat("t", i)), 0, nullptr).ok());
  }
  ASSERT_TRUE(f.queue->Offer(MakeTrajectory("t0"), 0, nullptr).ok());      // duplicate
  ASSERT_TRUE(f.queue->Offer(InvalidTrajectory("bad"), 0, nullptr).ok());  // invalid
  ASSERT_TRUE(f.queue->Offer(MakeTrajectory("old"), 5, nullptr).ok());     // stale
  ASSERT_TRUE(f.journal->Consumed(1, f.queue->PopBatch(2, 0, absl::ZeroDuration())).ok());
  ASSERT_TRUE(f.journal->Consumed(2, f.queue->PopBatch(2, 0, absl::ZeroDuration())).ok());
  std::vector<Trajectory> queued_before;
  auto before = ReadJournal(path, &queued_before);
  ASSERT_TRUE(before.ok());

  auto stats = f.journal->Compact();
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_LT(stats->bytes_after, stats->bytes_before);
  EXPECT_EQ(stats->kept_whole, 2);
  std::vector<Trajectory> queued_after;
  auto after = ReadJournal(path, &queued_after);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(Ids(queued_after), Ids(queued_before));
  EXPECT_EQ(Ids(queued_after), (std::vector<std::string>{"t4", "t5"}));
  ASSERT_EQ(after->ids.size(), before->ids.size());
  for (const auto& [id, e] : before->ids) {
    EXPECT_EQ(after->ids.at(id).fate, e.fate) << id;
    EXPECT_EQ(after->ids.at(id).consumed_at_step, e.consumed_at_step) << id;
  }
  EXPECT_EQ(after->duplicates, 1);
  EXPECT_EQ(after->resumes, 1);
  EXPECT_EQ(after->last_step, 2);
  // Appending goes on in the compacted file, and a later resume still works.
  ASSERT_TRUE(f.journal->Consumed(3, f.queue->PopBatch(2, 0, absl::ZeroDuration())).ok());
  ASSERT_TRUE(f.journal->Resumed(2).ok());
  queued_after.clear();
  after = ReadJournal(path, &queued_after);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(Ids(queued_after), (std::vector<std::string>{"t4", "t5"}));
  EXPECT_EQ(after->resumes, 2);
}

TEST(RunLedgerTest, EveryGeneratedTrajectoryHasOneFate) {
  const std::string path = TempPath("ledger");
  const std::string log0 = TempPath("w0.generated");
  const std::string log1 = TempPath("w1.generated");
  {
    QueueWithJournal f(path);
    ASSERT_TRUE(f.journal->Resumed(0).ok());
    for (const char* id : {"w0/1", "w0/2", "w1/1", "w1/2"}) {
      ASSERT_TRUE(f.queue->Offer(MakeTrajectory(id), 0, nullptr).ok());
    }
    ASSERT_TRUE(f.queue->Offer(MakeTrajectory("w0/1"), 0, nullptr).ok());  // resent
    ASSERT_TRUE(f.queue->Offer(MakeTrajectory("w1/3"), 9, nullptr).ok());  // stale
    ASSERT_TRUE(f.journal->Consumed(1, f.queue->PopBatch(3, 0, absl::ZeroDuration())).ok());
  }
  // w0 generated 3 (w0/3 died with it), the torn last line of w1 was never pushed.
  std::ofstream(log0) << "w0/1\nw0/2\nw0/3\n";
  std::ofstream(log1) << "w1/1\nw1/2\nw1/3\nw1/4";
  auto ledger = ComputeRunLedger({log0, log1}, path);
  ASSERT_TRUE(ledger.ok()) << ledger.status();
  SCOPED_TRACE(ledger->ToJson().dump());
  EXPECT_EQ(ledger->generated, 6);
  EXPECT_EQ(ledger->consumed, 3);
  EXPECT_EQ(ledger->dropped_stale, 1);
  EXPECT_EQ(ledger->dropped_shutdown, 1);   // w1/2: queued at the end
  EXPECT_EQ(ledger->in_flight_at_stop, 1);  // w0/3
  EXPECT_EQ(ledger->duplicates_received, 1);
  EXPECT_TRUE(ledger->balanced());
  // A trajectory the learner had that no worker generated unbalances it.
  std::ofstream(log1, std::ios::trunc) << "w1/1\nw1/3\n";
  ledger = ComputeRunLedger({log0, log1}, path);
  ASSERT_TRUE(ledger.ok());
  EXPECT_EQ(ledger->unknown_ids, 1);
  EXPECT_FALSE(ledger->balanced());
  EXPECT_FALSE(ComputeRunLedger({TempPath("nope")}, path).ok());
}

// Every sync setting keeps every verdict while streams offer and wait for durability at once,
// the trainer pops and records its steps, and a compaction runs in the middle.
TEST(TrajectoryJournalTest, EverySyncSettingKeepsEveryVerdictUnderConcurrentWriters) {
  for (auto sync : {TrajectoryJournal::Sync::kNone, TrajectoryJournal::Sync::kBatch,
                    TrajectoryJournal::Sync::kEvery}) {
    SCOPED_TRACE(static_cast<int>(sync));
    const std::string path = TempPath(absl::StrCat("sync", static_cast<int>(sync)));
    constexpr int kThreads = 4;
    constexpr int kEach = 50;
    std::atomic<int> acked{0};
    {
      QueueWithJournal f(path, /*capacity=*/kThreads * kEach, sync);
      ASSERT_EQ(f.journal->sync(), sync);
      std::vector<std::thread> streams;
      for (int w = 0; w < kThreads; ++w) {
        streams.emplace_back([&f, &acked, w] {
          for (int i = 0; i < kEach; ++i) {
            auto offered = f.queue->Offer(MakeTrajectory(absl::StrCat("w", w, "/", i)), 0, nullptr);
            ASSERT_TRUE(offered.ok()) << offered.status();
            if (i % 2 == 0) {
              f.queue->AwaitJournal();
              ++acked;
            } else {
              f.queue->WhenJournaled([&acked] { ++acked; });
            }
          }
        });
      }
      int64_t step = 0;
      int64_t popped = 0;
      while (popped < kThreads * kEach) {
        std::vector<Trajectory> batch = f.queue->PopBatch(10, 0, absl::Milliseconds(50));
        if (batch.empty()) continue;
        popped += static_cast<int64_t>(batch.size());
        ASSERT_TRUE(f.journal->Consumed(++step, batch).ok());
        if (step == 5) ASSERT_TRUE(f.journal->Compact().ok());
      }
      for (auto& s : streams) s.join();
      ASSERT_TRUE(f.journal->AwaitDurable().ok());
    }
    EXPECT_EQ(acked.load(), kThreads * kEach);  // every ack was sent, at the latest on close
    auto state = ReadJournal(path);
    ASSERT_TRUE(state.ok()) << state.status();
    EXPECT_EQ(state->ids.size(), static_cast<size_t>(kThreads * kEach));
    EXPECT_EQ(state->Count(Fate::kConsumed), kThreads * kEach);
    EXPECT_EQ(state->consumed_twice, 0);
    EXPECT_EQ(state->consumed_unknown, 0);
  }
}

}  // namespace
}  // namespace rlhf::learner
