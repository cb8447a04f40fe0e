// Tests of the trajectory queue: validation, dedup, staleness, parking, Cancel, Close and the
// ledger under concurrent producers.
#include "services/learner/trajectory_queue.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "services/learner/trajectory_test_util.h"

namespace rlhf::learner {
namespace {

using rlhf::v1::Ack;
using rlhf::v1::Trajectory;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::MakeTrajectory;

constexpr absl::Duration kNoWait = absl::ZeroDuration();

TrajectoryQueueOptions Options(int capacity = 2) {
  TrajectoryQueueOptions o;
  o.capacity = capacity;
  o.vocab_size = 100;
  o.max_seq_len = 16;
  o.max_policy_lag = 1;
  return o;
}

std::unique_ptr<TrajectoryQueue> MakeQueue(int capacity = 2) {
  auto q = TrajectoryQueue::Create(Options(capacity));
  EXPECT_TRUE(q.ok()) << q.status();
  return std::move(q).value();
}

// Records every ack; `hook`, when set, runs inside OnAccepted (re-entrancy tests).
class RecordingWaiter : public TrajectoryQueue::Waiter {
 public:
  void OnAccepted(const Ack& ack) override {
    {
      absl::MutexLock lock(&mu_);
      acks_.push_back(ack);
    }
    if (hook) hook(ack);
  }
  std::vector<std::string> AckedIds() {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> ids;
    for (const Ack& a : acks_) {
      EXPECT_EQ(a.outcome(), Ack::ACCEPTED);
      ids.push_back(a.trajectory_id());
    }
    return ids;
  }
  std::function<void(const Ack&)> hook;

 private:
  absl::Mutex mu_;
  std::vector<Ack> acks_ ABSL_GUARDED_BY(mu_);
};

Ack::Outcome OfferOutcome(TrajectoryQueue& q, Trajectory t, int64_t version = 0) {
  auto r = q.Offer(std::move(t), version, nullptr);
  EXPECT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->blocked);
  return r->ack.outcome();
}

std::vector<std::string> Ids(const std::vector<Trajectory>& ts) {
  std::vector<std::string> ids;
  for (const auto& t : ts) ids.push_back(t.id());
  return ids;
}

void ExpectIdentities(const TrajectoryLedger& l) {
  EXPECT_EQ(l.received,
            l.accepted + l.duplicate + l.invalid + l.stale_on_arrival + l.parked + l.cancelled);
  EXPECT_EQ(l.accepted, l.consumed + l.stale_at_pop + l.queued);
}

TEST(TrajectoryQueueTest, AcceptsThenAcksResendAsDuplicate) {
  auto q = MakeQueue();
  EXPECT_EQ(OfferOutcome(*q, MakeTrajectory("w/1")), Ack::ACCEPTED);
  EXPECT_EQ(OfferOutcome(*q, MakeTrajectory("w/1")), Ack::DUPLICATE);
  const TrajectoryLedger l = q->Ledger();
  EXPECT_EQ(l.received, 2);
  EXPECT_EQ(l.accepted, 1);
  EXPECT_EQ(l.duplicate, 1);
  EXPECT_EQ(q->size(), 1);
  ExpectIdentities(l);
  EXPECT_FALSE(TrajectoryQueue::Create(Options(0)).ok());
}

TEST(TrajectoryQueueTest, InvalidTrajectoriesNameIdAndField) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  struct Case {
    std::string field;
    std::function<void(Trajectory&)> mutate;
  };
  const std::vector<Case> cases = {
      {"id is empty", [](Trajectory& t) { t.clear_id(); }},
      {"prompt_tokens is empty", [](Trajectory& t) { t.clear_prompt_tokens(); }},
      {"response_tokens is empty", [](Trajectory& t) { t.clear_response_tokens(); }},
      {"prompt_tokens[1] = -1", [](Trajectory& t) { t.set_prompt_tokens(1, -1); }},
      {"response_tokens[2] = 100", [](Trajectory& t) { t.set_response_tokens(2, 100); }},
      {"max_seq_len",
       [](Trajectory& t) {
         for (int i = 0; i < 12; ++i) t.add_prompt_tokens(1);
       }},
      {"behaviour_logprobs has 2",
       [](Trajectory& t) { t.mutable_behaviour_logprobs()->RemoveLast(); }},
      {"ref_logprobs has 4", [](Trajectory& t) { t.add_ref_logprobs(-1); }},
      {"behaviour_logprobs[0]", [nan](Trajectory& t) { t.set_behaviour_logprobs(0, nan); }},
      {"behaviour_logprobs[1]", [inf](Trajectory& t) { t.set_behaviour_logprobs(1, -inf); }},
      {"ref_logprobs[2]", [](Trajectory& t) { t.set_ref_logprobs(2, 0.5f); }},
      {"reward", [nan](Trajectory& t) { t.set_reward(nan); }},
      {"reward", [inf](Trajectory& t) { t.set_reward(inf); }},
      {"policy_version", [](Trajectory& t) { t.set_policy_version(-1); }},
  };
  auto q = MakeQueue(100);
  int n = 0;
  for (const Case& c : cases) {
    Trajectory t = MakeTrajectory(absl::StrCat("w/", n++));
    c.mutate(t);
    const std::string id = t.id().empty() ? "(no id)" : t.id();
    const absl::Status s = ValidateTrajectory(t, 100, 16);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_THAT(s.message(), HasSubstr(absl::StrCat("trajectory ", id, ": ")));
    EXPECT_THAT(s.message(), HasSubstr(c.field));
    auto r = q->Offer(t, 0, nullptr);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->ack.outcome(), Ack::INVALID) << c.field;
    EXPECT_EQ(r->ack.message(), s.message());
  }
  Trajectory rounding = MakeTrajectory("w/rounding");
  rounding.set_ref_logprobs(0, 5e-4f);  // log-probs slightly above 0 are float rounding
  EXPECT_TRUE(ValidateTrajectory(rounding, 100, 16).ok());
  const TrajectoryLedger l = q->Ledger();
  EXPECT_EQ(l.invalid, static_cast<int64_t>(cases.size()));
  ExpectIdentities(l);
}

TEST(TrajectoryQueueTest, StaleOnArrival) {
  auto q = MakeQueue();
  auto r = q->Offer(MakeTrajectory("w/1", 3), 5, nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->ack.outcome(), Ack::STALE);
  EXPECT_THAT(r->ack.message(), HasSubstr("max_policy_lag"));
  EXPECT_EQ(OfferOutcome(*q, MakeTrajectory("w/2", 4), 5), Ack::ACCEPTED);
  EXPECT_EQ(OfferOutcome(*q, MakeTrajectory("w/1", 5), 5), Ack::DUPLICATE);  // judged once
  const TrajectoryLedger l = q->Ledger();
  EXPECT_EQ(l.stale_on_arrival, 1);
  ExpectIdentities(l);
}

TEST(TrajectoryQueueTest, FullQueueParksAndPopAdmitsInParkOrder) {
  auto q = MakeQueue(2);
  RecordingWaiter w1, w2, w3;
  EXPECT_EQ(OfferOutcome(*q, MakeTrajectory("a")), Ack::ACCEPTED);
  EXPECT_EQ(OfferOutcome(*q, MakeTrajectory("b")), Ack::ACCEPTED);
  auto c = q->Offer(MakeTrajectory("c"), 0, &w1);
  auto d = q->Offer(MakeTrajectory("d"), 0, &w2);
  ASSERT_TRUE(c.ok() && d.ok());
  EXPECT_TRUE(c->blocked);
  EXPECT_TRUE(d->blocked);
  EXPECT_EQ(q->Offer(MakeTrajectory("e"), 0, &w1).status().code(),
            absl::StatusCode::kFailedPrecondition);  // one parked per waiter
  auto resend = q->Offer(MakeTrajectory("c"), 0, &w3);
  ASSERT_TRUE(resend.ok());
  EXPECT_EQ(resend->ack.outcome(), Ack::DUPLICATE);
  EXPECT_EQ(q->Offer(MakeTrajectory("f"), 0, nullptr).status().code(),
            absl::StatusCode::kResourceExhausted);  // no waiter: refused, not counted
  TrajectoryLedger l = q->Ledger();
  EXPECT_EQ(l.parked, 2);
  EXPECT_EQ(l.received, 5);
  ExpectIdentities(l);

  EXPECT_THAT(Ids(q->PopBatch(1, 0, kNoWait)), ElementsAre("a"));
  EXPECT_THAT(w1.AckedIds(), ElementsAre("c"));
  EXPECT_TRUE(w2.AckedIds().empty());
  EXPECT_THAT(Ids(q->PopBatch(5, 0, kNoWait)), ElementsAre("b", "c", "d"));
  EXPECT_THAT(w2.AckedIds(), ElementsAre("d"));
  EXPECT_EQ(OfferOutcome(*q, MakeTrajectory("f")), Ack::ACCEPTED);  // "f" was not remembered
  l = q->Ledger();
  EXPECT_EQ(l.accepted, 5);
  EXPECT_EQ(l.consumed, 4);
  ExpectIdentities(l);
}

TEST(TrajectoryQueueTest, CancelDropsTheParkedTrajectoryAndSilencesTheWaiter) {
  auto q = MakeQueue(1);
  RecordingWaiter w1, w2;
  EXPECT_EQ(OfferOutcome(*q, MakeTrajectory("a")), Ack::ACCEPTED);
  ASSERT_TRUE(q->Offer(MakeTrajectory("b"), 0, &w1)->blocked);
  ASSERT_TRUE(q->Offer(MakeTrajectory("c"), 0, &w2)->blocked);
  q->Cancel(&w1);
  q->Cancel(&w1);  // idempotent
  TrajectoryLedger l = q->Ledger();
  EXPECT_EQ(l.cancelled, 1);
  EXPECT_EQ(l.parked, 1);
  ExpectIdentities(l);
  EXPECT_THAT(Ids(q->PopBatch(3, 0, kNoWait)), ElementsAre("a", "c"));
  EXPECT_TRUE(w1.AckedIds().empty());
  EXPECT_THAT(w2.AckedIds(), ElementsAre("c"));
  ExpectIdentities(q->Ledger());
}

TEST(TrajectoryQueueTest, CancelWaitsForACallInProgress) {
  auto q = MakeQueue(1);
  RecordingWaiter w;
  absl::Notification entered, release;
  std::atomic<bool> call_finished{false};
  w.hook = [&](const Ack&) {
    entered.Notify();
    release.WaitForNotification();
    call_finished = true;
  };
  EXPECT_EQ(OfferOutcome(*q, MakeTrajectory("a")), Ack::ACCEPTED);
  ASSERT_TRUE(q->Offer(MakeTrajectory("b"), 0, &w)->blocked);
  std::thread trainer([&] { q->PopBatch(1, 0, kNoWait); });
  entered.WaitForNotification();
  std::atomic<bool> finished_before_cancel_returned{false};
  std::thread stream_closing([&] {
    q->Cancel(&w);
    finished_before_cancel_returned = call_finished.load();
  });
  release.Notify();
  stream_closing.join();
  trainer.join();
  EXPECT_TRUE(finished_before_cancel_returned);
  EXPECT_EQ(q->Ledger().cancelled, 0);  // it had been admitted
}

TEST(TrajectoryQueueTest, OnAcceptedMayReenterOfferAndCancel) {
  auto q = MakeQueue(1);
  RecordingWaiter w;
  int calls = 0;
  w.hook = [&](const Ack&) {
    if (++calls == 1) {
      // The reactor reads its next trajectory at once; the queue is full again: parked.
      auto next = q->Offer(MakeTrajectory("c"), 0, &w);
      ASSERT_TRUE(next.ok());
      EXPECT_TRUE(next->blocked);
    } else {
      q->Cancel(&w);  // the stream ends inside the callback
    }
  };
  EXPECT_EQ(OfferOutcome(*q, MakeTrajectory("a")), Ack::ACCEPTED);
  ASSERT_TRUE(q->Offer(MakeTrajectory("b"), 0, &w)->blocked);
  EXPECT_THAT(Ids(q->PopBatch(1, 0, kNoWait)), ElementsAre("a"));
  EXPECT_THAT(Ids(q->PopBatch(1, 0, kNoWait)), ElementsAre("b"));
  EXPECT_THAT(w.AckedIds(), ElementsAre("b", "c"));
  EXPECT_THAT(Ids(q->PopBatch(1, 0, kNoWait)), ElementsAre("c"));
  ExpectIdentities(q->Ledger());
}

TEST(TrajectoryQueueTest, PopBatchTimesOutWithWhatThereIs) {
  auto q = MakeQueue(4);
  EXPECT_TRUE(q->PopBatch(2, 0, absl::Milliseconds(1)).empty());
  EXPECT_EQ(OfferOutcome(*q, MakeTrajectory("a")), Ack::ACCEPTED);
  EXPECT_THAT(Ids(q->PopBatch(3, 0, absl::Milliseconds(5))), ElementsAre("a"));
  EXPECT_TRUE(q->PopBatch(0, 0, absl::InfiniteDuration()).empty());
}

TEST(TrajectoryQueueTest, PopBatchWaitsForEnough) {
  auto q = MakeQueue(4);
  std::vector<Trajectory> got;
  std::thread trainer([&] { got = q->PopBatch(2, 0, absl::InfiniteDuration()); });
  EXPECT_EQ(OfferOutcome(*q, MakeTrajectory("a")), Ack::ACCEPTED);
  EXPECT_EQ(OfferOutcome(*q, MakeTrajectory("b")), Ack::ACCEPTED);
  trainer.join();
  EXPECT_THAT(Ids(got), ElementsAre("a", "b"));
}

TEST(TrajectoryQueueTest, StaleAtPopIsDroppedAndNotReturned) {
  auto q = MakeQueue(4);
  EXPECT_EQ(OfferOutcome(*q, MakeTrajectory("old", 5), 5), Ack::ACCEPTED);
  EXPECT_EQ(OfferOutcome(*q, MakeTrajectory("new", 6), 6), Ack::ACCEPTED);
  EXPECT_EQ(OfferOutcome(*q, MakeTrajectory("newer", 7), 7), Ack::ACCEPTED);
  EXPECT_THAT(Ids(q->PopBatch(2, 7, kNoWait)), ElementsAre("new", "newer"));
  const TrajectoryLedger l = q->Ledger();
  EXPECT_EQ(l.stale_at_pop, 1);
  EXPECT_EQ(l.consumed, 2);
  ExpectIdentities(l);
}

TEST(TrajectoryQueueTest, CloseWakesPopBatchAndRefusesOffers) {
  auto q = MakeQueue(4);
  absl::Notification started;
  std::vector<Trajectory> got = {MakeTrajectory("sentinel")};
  std::thread trainer([&] {
    started.Notify();
    got = q->PopBatch(3, 0, absl::InfiniteDuration());
  });
  started.WaitForNotification();
  EXPECT_EQ(OfferOutcome(*q, MakeTrajectory("a")), Ack::ACCEPTED);
  q->Close();
  trainer.join();  // returns whether or not it had begun waiting
  EXPECT_LE(got.size(), 1u);
  EXPECT_EQ(q->Offer(MakeTrajectory("b"), 0, nullptr).status().code(),
            absl::StatusCode::kUnavailable);
  q->PopBatch(3, 0, absl::InfiniteDuration());  // drains without waiting
  const TrajectoryLedger l = q->Ledger();
  EXPECT_EQ(l.received, 1);
  EXPECT_EQ(l.consumed, 1);
  ExpectIdentities(l);
}

// A producer thread (one PushTrajectories stream): random valid, invalid, stale and resent
// trajectories; when parked, it waits for its ack or cancels (the stream closing).
struct Producer : TrajectoryQueue::Waiter {
  void OnAccepted(const Ack& ack) override {
    absl::MutexLock lock(&mu);
    EXPECT_EQ(ack.outcome(), Ack::ACCEPTED);
    acked = true;
  }
  absl::Mutex mu;
  bool acked ABSL_GUARDED_BY(mu) = false;
  // Tallies of what this producer saw.
  int64_t offers = 0, accepted_later = 0, unacked_cancels = 0;
  int64_t now[5] = {};  // immediate acks by Ack::Outcome
};

void RunProducer(TrajectoryQueue& q, Producer& p, int index, const std::atomic<int64_t>& version) {
  std::mt19937 rng(1000 + index);
  std::vector<std::string> sent;
  for (int i = 0; i < 300; ++i) {
    const int kind = std::uniform_int_distribution<int>(0, 9)(rng);
    const int64_t now = version.load();
    Trajectory t = MakeTrajectory(absl::StrCat("p", index, "/", i), now);
    if (kind == 0 && !sent.empty()) t.set_id(sent[rng() % sent.size()]);
    if (kind == 1) t.set_response_tokens(0, 1000);
    if (kind == 2) t.set_policy_version(std::max<int64_t>(0, now - 3));
    if (kind == 3) t.set_policy_version(std::max<int64_t>(0, now - 1));  // may go stale later
    sent.push_back(t.id());
    {
      absl::MutexLock lock(&p.mu);
      p.acked = false;
    }
    auto r = q.Offer(std::move(t), now, &p);
    ASSERT_TRUE(r.ok()) << r.status();
    ++p.offers;
    if (!r->blocked) {
      ASSERT_GT(r->ack.outcome(), Ack::OUTCOME_UNSPECIFIED);
      ASSERT_LE(r->ack.outcome(), Ack::STALE);
      ++p.now[r->ack.outcome()];
      continue;
    }
    if (rng() % 5 == 0) {
      q.Cancel(&p);
      absl::MutexLock lock(&p.mu);
      ++(p.acked ? p.accepted_later : p.unacked_cancels);
    } else {
      absl::MutexLock lock(&p.mu);
      p.mu.Await(absl::Condition(&p.acked));
      ++p.accepted_later;
    }
  }
}

TEST(TrajectoryQueueTest, LedgerIdentitiesHoldUnderConcurrentProducers) {
  constexpr int kProducers = 4;
  auto q = MakeQueue(8);
  std::atomic<int64_t> version{1};
  std::atomic<bool> producers_done{false};
  int64_t popped = 0;
  std::thread trainer([&] {
    std::mt19937 rng(7);
    while (!producers_done.load() || q->size() > 0) {
      const int n = std::uniform_int_distribution<int>(1, 6)(rng);
      popped += q->PopBatch(n, version.load(), absl::Milliseconds(1)).size();
      if (rng() % 4 == 0) version.fetch_add(1);
    }
  });
  std::vector<Producer> producers(kProducers);
  std::vector<std::thread> threads;
  for (int i = 0; i < kProducers; ++i) {
    threads.emplace_back([&, i] { RunProducer(*q, producers[i], i, version); });
  }
  for (auto& t : threads) t.join();
  producers_done = true;
  trainer.join();
  q->Close();

  Producer total;
  for (const Producer& p : producers) {
    total.offers += p.offers;
    total.accepted_later += p.accepted_later;
    total.unacked_cancels += p.unacked_cancels;
    for (int o = 0; o < 5; ++o) total.now[o] += p.now[o];
  }
  const TrajectoryLedger l = q->Ledger();
  ExpectIdentities(l);
  EXPECT_EQ(l.received, total.offers);
  EXPECT_EQ(l.duplicate, total.now[Ack::DUPLICATE]);
  EXPECT_EQ(l.invalid, total.now[Ack::INVALID]);
  EXPECT_EQ(l.stale_on_arrival, total.now[Ack::STALE]);
  // A parked trajectory ends accepted (acked, or its ack dropped by Cancel) or cancelled.
  EXPECT_EQ(l.accepted + l.cancelled,
            total.now[Ack::ACCEPTED] + total.accepted_later + total.unacked_cancels);
  EXPECT_EQ(l.queued, 0);
  EXPECT_EQ(l.parked, 0);
  EXPECT_EQ(l.consumed, popped);
  // The workload reached every path.
  EXPECT_GT(total.accepted_later, 0);
  EXPECT_GT(l.duplicate, 0);
  EXPECT_GT(l.invalid, 0);
  EXPECT_GT(l.stale_on_arrival, 0);
}

// ---- Groups (RLOO / GRPO) --------------------------------------------------------------------

std::unique_ptr<TrajectoryQueue> MakeGroupQueue(int group_size, int capacity,
                                                TrajectoryJournal* journal = nullptr) {
  TrajectoryQueueOptions o = Options(capacity);
  o.group_size = group_size;
  o.journal = journal;
  auto q = TrajectoryQueue::Create(o);
  EXPECT_TRUE(q.ok()) << q.status();
  return std::move(q).value();
}

// Member `id` of group (lease, prompt), generated at `version`.
Trajectory Member(const std::string& id, const std::string& lease, int64_t prompt,
                  int64_t version = 0) {
  Trajectory t = MakeTrajectory(id, version);
  t.set_lease_id(lease);
  t.set_prompt_index(prompt);
  return t;
}

TEST(TrajectoryQueueGroupTest, GroupsComeOutWholeInTheOrderTheyComplete) {
  auto q = MakeGroupQueue(/*group_size=*/2, /*capacity=*/16);
  // Interleaved arrivals of groups a (L1, 0), b (L1, 1), c (L2, 0).
  for (const Trajectory& t : {Member("a1", "L1", 0), Member("b1", "L1", 1), Member("c1", "L2", 0),
                              Member("b2", "L1", 1), Member("a2", "L1", 0)}) {
    EXPECT_EQ(OfferOutcome(*q, t), Ack::ACCEPTED);
  }
  EXPECT_EQ(q->Ledger().held, 1);  // c1
  // b completed first, then a; c is held. Never more than n, never a split group.
  EXPECT_THAT(Ids(q->PopBatch(3, 0, kNoWait)), ElementsAre("b1", "b2"));
  EXPECT_THAT(Ids(q->PopBatch(1, 0, kNoWait)), ElementsAre());
  EXPECT_THAT(Ids(q->PopBatch(4, 0, kNoWait)), ElementsAre("a1", "a2"));
  EXPECT_THAT(Ids(q->PopBatch(4, 0, kNoWait)), ElementsAre());
  EXPECT_EQ(OfferOutcome(*q, Member("c2", "L2", 0)), Ack::ACCEPTED);
  EXPECT_THAT(Ids(q->PopBatch(4, 0, absl::Seconds(5))), ElementsAre("c1", "c2"));
  ExpectIdentities(q->Ledger());
  EXPECT_EQ(q->Ledger().consumed, 6);
}

TEST(TrajectoryQueueGroupTest, PopBatchWaitsForWholeGroups) {
  auto q = MakeGroupQueue(2, 16);
  EXPECT_EQ(OfferOutcome(*q, Member("a1", "L1", 0)), Ack::ACCEPTED);
  std::thread late([&] { EXPECT_EQ(OfferOutcome(*q, Member("a2", "L1", 0)), Ack::ACCEPTED); });
  EXPECT_THAT(Ids(q->PopBatch(2, 0, absl::Seconds(30))), ElementsAre("a1", "a2"));
  late.join();
}

TEST(TrajectoryQueueGroupTest, APromptTwiceInALeaseIsTwoGroups) {
  auto q = MakeGroupQueue(2, 16);
  for (const char* id : {"x1", "x2", "x3"}) {
    EXPECT_EQ(OfferOutcome(*q, Member(id, "L1", 7)), Ack::ACCEPTED);
  }
  EXPECT_THAT(Ids(q->PopBatch(4, 0, kNoWait)), ElementsAre("x1", "x2"));
  EXPECT_EQ(q->Ledger().held, 1);
}

TEST(TrajectoryQueueGroupTest, AStaleMemberDropsItsWholeGroup) {
  auto q = MakeGroupQueue(2, 16);  // max_policy_lag 1; offered while version 1 is current
  EXPECT_EQ(OfferOutcome(*q, Member("a1", "L1", 0, /*version=*/0), 1), Ack::ACCEPTED);
  EXPECT_EQ(OfferOutcome(*q, Member("a2", "L1", 0, /*version=*/1), 1), Ack::ACCEPTED);
  EXPECT_EQ(OfferOutcome(*q, Member("b1", "L1", 1, /*version=*/0), 1), Ack::ACCEPTED);  // held
  EXPECT_EQ(OfferOutcome(*q, Member("c1", "L2", 0, /*version=*/1), 1), Ack::ACCEPTED);
  EXPECT_EQ(OfferOutcome(*q, Member("c2", "L2", 0, /*version=*/1), 1), Ack::ACCEPTED);
  // At version 2 a1 and b1 are stale: group a goes whole, the held b1 too (b is voided).
  EXPECT_THAT(Ids(q->PopBatch(4, 2, kNoWait)), ElementsAre("c1", "c2"));
  TrajectoryLedger l = q->Ledger();
  EXPECT_EQ(l.stale_at_pop, 3);
  EXPECT_EQ(l.queued, 0);
  // b's other member arrives, fresh: its group is gone.
  EXPECT_EQ(OfferOutcome(*q, Member("b2", "L1", 1, /*version=*/2), 2), Ack::STALE);
  l = q->Ledger();
  EXPECT_EQ(l.stale_on_arrival, 1);
  ExpectIdentities(l);
}

TEST(TrajectoryQueueGroupTest, AVoidedGroupDropsItsHeldMembersAndLaterOnes) {
  auto q = MakeGroupQueue(3, 16);
  for (const char* id : {"a1", "a2", "a3", "a4"}) {  // one complete group and one extra member
    EXPECT_EQ(OfferOutcome(*q, Member(id, "L1", 0)), Ack::ACCEPTED);
  }
  EXPECT_EQ(OfferOutcome(*q, Member("b1", "L1", 1)), Ack::ACCEPTED);
  EXPECT_EQ(q->VoidGroup("L1", 0), 1);  // a4
  EXPECT_EQ(q->VoidGroup("L1", 1), 1);  // b1
  EXPECT_EQ(q->VoidGroup("L9", 0), 0);
  EXPECT_EQ(OfferOutcome(*q, Member("b2", "L1", 1)), Ack::STALE);
  EXPECT_THAT(Ids(q->PopBatch(6, 0, kNoWait)), ElementsAre("a1", "a2", "a3"));
  const TrajectoryLedger l = q->Ledger();
  EXPECT_EQ(l.stale_at_pop, 2);
  EXPECT_EQ(l.stale_on_arrival, 1);
  EXPECT_EQ(l.queued, 0);
  ExpectIdentities(l);
}

TEST(TrajectoryQueueGroupTest, AParkedMemberOfAVoidedGroupIsDroppedWhenAdmitted) {
  auto q = MakeGroupQueue(2, 2);
  EXPECT_EQ(OfferOutcome(*q, Member("a1", "L1", 0)), Ack::ACCEPTED);
  EXPECT_EQ(OfferOutcome(*q, Member("b1", "L1", 1)), Ack::ACCEPTED);
  RecordingWaiter waiter;
  auto parked = q->Offer(Member("b2", "L1", 1), 0, &waiter);
  ASSERT_TRUE(parked.ok());
  ASSERT_TRUE(parked->blocked);
  EXPECT_EQ(q->VoidGroup("L1", 1), 1);  // b1 goes; the room admits b2, which is b's too
  EXPECT_THAT(waiter.AckedIds(), ElementsAre("b2"));
  const TrajectoryLedger l = q->Ledger();
  EXPECT_EQ(l.stale_at_pop, 2);
  EXPECT_EQ(l.queued, 1);  // a1, held
  EXPECT_EQ(l.held, 1);
  ExpectIdentities(l);
}

TEST(TrajectoryQueueGroupTest, RestoreDropsIncompleteGroupsAndJournalsThem) {
  const std::string path =
      absl::StrCat(::testing::TempDir(), "/group_restore_", ::getpid(), ".journal");
  std::remove(path.c_str());
  auto journal = TrajectoryJournal::Open(path);
  ASSERT_TRUE(journal.ok()) << journal.status();
  std::vector<Trajectory> queued = {Member("a1", "L1", 0), Member("b1", "L1", 1),
                                    Member("a2", "L1", 0)};
  for (const Trajectory& t : queued) ASSERT_TRUE((*journal)->Accepted(t).ok());
  auto q = MakeGroupQueue(2, 16, journal->get());
  TrajectoryLedger start;
  start.received = start.accepted = 3;
  q->Restore(queued, {"a1", "b1", "a2"}, start);
  TrajectoryLedger l = q->Ledger();
  EXPECT_EQ(l.stale_at_pop, 1);  // b1: its lease died with the old learner
  EXPECT_EQ(l.queued, 2);
  ExpectIdentities(l);
  EXPECT_EQ(OfferOutcome(*q, Member("b2", "L1", 1)), Ack::STALE);
  EXPECT_THAT(Ids(q->PopBatch(2, 0, kNoWait)), ElementsAre("a1", "a2"));
  auto state = ReadJournal(path);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->ids.at("b1").fate, JournalState::Fate::kStaleAtPop);
  EXPECT_EQ(state->ids.at("b2").fate, JournalState::Fate::kStaleOnArrival);
  std::remove(path.c_str());
}

TEST(TrajectoryQueueGroupTest, GroupSizeBeyondCapacityIsRejected) {
  TrajectoryQueueOptions o = Options(4);
  o.group_size = 5;
  EXPECT_EQ(Validate(o).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace rlhf::learner
