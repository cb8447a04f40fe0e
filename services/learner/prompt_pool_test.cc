// Tests of the prompt pool: JSONL reading, epoch order, resume, leases, expiry and the ledger.
#include "services/learner/prompt_pool.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace rlhf::learner {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<rlhf::v1::Prompt> MakePrompts(int n) {
  std::vector<rlhf::v1::Prompt> prompts(n);
  for (int i = 0; i < n; ++i) {
    prompts[i].set_index(i);
    prompts[i].set_text(absl::StrCat("p", i));
    prompts[i].add_tokens(i + 1);
  }
  return prompts;
}

// A clock the test moves by hand.
struct FakeClock {
  absl::Mutex mu;
  absl::Time t ABSL_GUARDED_BY(mu) = absl::UnixEpoch();
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu);
    t += d;
  }
  std::function<absl::Time()> Fn() {
    return [this] {
      absl::MutexLock lock(&mu);
      return t;
    };
  }
};

std::unique_ptr<PromptPool> MakePool(int n, FakeClock* clock, uint64_t seed = 1,
                                     int group_size = 1) {
  PromptPoolOptions options;
  options.seed = seed;
  options.group_size = group_size;
  options.max_lease_prompts = 64;
  if (clock != nullptr) options.now = clock->Fn();
  auto pool = PromptPool::Create(MakePrompts(n), options);
  EXPECT_TRUE(pool.ok()) << pool.status();
  return std::move(pool).value();
}

std::vector<int64_t> Indices(const rlhf::v1::PromptLease& lease) {
  std::vector<int64_t> out;
  for (const auto& p : lease.prompts()) out.push_back(p.index());
  return out;
}

// Leases `count` prompts one lease of `per_lease` at a time and returns their indices.
std::vector<int64_t> Draw(PromptPool& pool, int count, int per_lease) {
  std::vector<int64_t> out;
  while (static_cast<int>(out.size()) < count) {
    auto lease = pool.Lease("w", std::min(per_lease, count - static_cast<int>(out.size())));
    EXPECT_TRUE(lease.ok()) << lease.status();
    for (int64_t i : Indices(*lease)) out.push_back(i);
  }
  return out;
}

void ExpectLedgerIdentities(const PromptPoolStats& s) {
  EXPECT_EQ(s.prompts_leased,
            s.prompts_completed + s.prompts_returned + s.prompts_expired + s.outstanding);
  EXPECT_EQ(s.prompts_returned + s.prompts_expired + s.completions_voided,
            s.prompts_reissued + s.requeued);
}

// ---- ReadPromptsJsonl -------------------------------------------------------------------------

std::string WriteTemp(const std::string& name, const std::string& contents) {
  const std::string path = ::testing::TempDir() + "/prompt_pool_test_" + name + ".jsonl";
  std::ofstream(path) << contents;
  return path;
}

TEST(ReadPromptsJsonlTest, ReadsPromptsInOrderSkippingBlankLines) {
  const std::string path = WriteTemp(
      "good", "{\"prompt\": \"Hello\"}\n\n   \n{\"prompt\": \"w\\u00f6rld\", \"x\": 1}\r\n");
  auto prompts = ReadPromptsJsonl(path);
  ASSERT_TRUE(prompts.ok()) << prompts.status();
  EXPECT_THAT(*prompts, ElementsAre("Hello", "w\xc3\xb6rld"));
}

TEST(ReadPromptsJsonlTest, MissingFileIsNotFoundNamingThePath) {
  const std::string path = ::testing::TempDir() + "/prompt_pool_test_no_such_file.jsonl";
  auto prompts = ReadPromptsJsonl(path);
  EXPECT_EQ(prompts.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(prompts.status().message(), HasSubstr(path));
}

TEST(ReadPromptsJsonlTest, EachBadLineNamesFileAndLine) {
  const std::string good = "{\"prompt\": \"ok\"}\n\n";  // the bad line is line 3
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"not_json", "{\"prompt\": \"unterminated}"}, {"not_object", "[\"prompt\"]"},
      {"no_prompt", "{\"text\": \"x\"}"},           {"not_string", "{\"prompt\": 7}"},
      {"empty_prompt", "{\"prompt\": \"\"}"},
  };
  for (const auto& [name, line] : cases) {
    const std::string path = WriteTemp(name, good + line + "\n" + good);
    auto prompts = ReadPromptsJsonl(path);
    EXPECT_EQ(prompts.status().code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_THAT(prompts.status().message(), HasSubstr(path + ":3:")) << name;
  }
}

TEST(ReadPromptsJsonlTest, FileWithoutPromptsIsInvalid) {
  for (const std::string contents : {"", "\n  \n"}) {
    const std::string path = WriteTemp("empty", contents);
    auto prompts = ReadPromptsJsonl(path);
    EXPECT_EQ(prompts.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(prompts.status().message(), HasSubstr(path + ": no prompts"));
  }
}

// ---- Create -----------------------------------------------------------------------------------

TEST(PromptPoolTest, CreateRejectsBadInput) {
  EXPECT_FALSE(PromptPool::Create({}, PromptPoolOptions()).ok());
  auto bad_index = MakePrompts(3);
  bad_index[1].set_index(5);
  EXPECT_THAT(PromptPool::Create(bad_index, PromptPoolOptions()).status().message(),
              HasSubstr("prompt 1 has index 5"));
  auto no_tokens = MakePrompts(3);
  no_tokens[2].clear_tokens();
  EXPECT_THAT(PromptPool::Create(no_tokens, PromptPoolOptions()).status().message(),
              HasSubstr("prompt 2 has no tokens"));
  PromptPoolOptions options;
  options.lease_duration = absl::ZeroDuration();
  EXPECT_FALSE(PromptPool::Create(MakePrompts(3), options).ok());
  options = PromptPoolOptions();
  options.max_lease_prompts = 0;
  EXPECT_FALSE(PromptPool::Create(MakePrompts(3), options).ok());
}

// ---- Order and resume -------------------------------------------------------------------------

TEST(PromptPoolTest, EpochsArePermutationsDeterministicPerSeed) {
  constexpr int kN = 20;
  auto a = MakePool(kN, nullptr, /*seed=*/7);
  auto b = MakePool(kN, nullptr, /*seed=*/7);
  auto c = MakePool(kN, nullptr, /*seed=*/8);
  const std::vector<int64_t> seq_a = Draw(*a, 3 * kN, 7);
  EXPECT_EQ(seq_a, Draw(*b, 3 * kN, 3));  // lease sizes do not matter
  EXPECT_NE(seq_a, Draw(*c, 3 * kN, 7));
  std::vector<std::vector<int64_t>> epochs;
  for (int e = 0; e < 3; ++e) {
    std::vector<int64_t> epoch(seq_a.begin() + e * kN, seq_a.begin() + (e + 1) * kN);
    std::vector<int64_t> sorted = epoch;
    std::sort(sorted.begin(), sorted.end());
    for (int i = 0; i < kN; ++i) ASSERT_EQ(sorted[i], i) << "epoch " << e;
    epochs.push_back(epoch);
  }
  EXPECT_NE(epochs[0], epochs[1]);
  EXPECT_NE(epochs[1], epochs[2]);
  EXPECT_EQ(a->position(), 3 * kN);
}

TEST(PromptPoolTest, LeaseCarriesPromptsAndId) {
  auto pool = MakePool(5, nullptr);
  auto first = pool->Lease("w1", 2);
  auto second = pool->Lease("w2", 2);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_NE(first->lease_id(), second->lease_id());
  EXPECT_DOUBLE_EQ(first->expires_in_seconds(), 60.0);
  ASSERT_EQ(first->prompts_size(), 2);
  const auto& p = first->prompts(0);
  EXPECT_EQ(p.text(), absl::StrCat("p", p.index()));
  EXPECT_THAT(p.tokens(), ElementsAre(p.index() + 1));
  EXPECT_EQ(first->policy_version(), 0);
}

TEST(PromptPoolTest, RestoreContinuesTheSameSequence) {
  auto original = MakePool(9, nullptr);
  Draw(*original, 13, 4);
  const int64_t position = original->position();
  ASSERT_EQ(position, 13);
  const std::vector<int64_t> rest = Draw(*original, 25, 5);

  auto resumed = MakePool(9, nullptr);
  ASSERT_TRUE(resumed->Restore(position).ok());
  EXPECT_EQ(resumed->position(), position);
  EXPECT_EQ(Draw(*resumed, 25, 3), rest);
  EXPECT_EQ(resumed->Stats().prompts_leased, 25);
  EXPECT_EQ(resumed->Restore(0).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(MakePool(9, nullptr)->Restore(-1).code(), absl::StatusCode::kInvalidArgument);
}

TEST(PromptPoolTest, LeaseRejectsBadSizes) {
  auto pool = MakePool(5, nullptr);
  EXPECT_EQ(pool->Lease("w", 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(pool->Lease("w", 65).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(pool->Lease("w", 64).ok());  // spans epochs of a small pool
}

// ---- Expiry, Return, Complete, Close ----------------------------------------------------------

TEST(PromptPoolTest, ExpiredPromptsAreReissuedFirst) {
  FakeClock clock;
  auto pool = MakePool(10, &clock);
  auto lease = pool->Lease("w1", 3);
  ASSERT_TRUE(lease.ok());
  const std::vector<int64_t> first = Indices(*lease);
  pool->Complete(lease->lease_id(), first[1]);
  clock.Advance(absl::Seconds(59));
  auto other = pool->Lease("w2", 1);  // not yet expired: fresh prompt
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(pool->Stats().prompts_expired, 0);
  clock.Advance(absl::Seconds(1));
  auto again = pool->Lease("w3", 4);
  ASSERT_TRUE(again.ok());
  const std::vector<int64_t> got = Indices(*again);
  EXPECT_EQ(got[0], first[0]);
  EXPECT_EQ(got[1], first[2]);
  PromptPoolStats s = pool->Stats();
  EXPECT_EQ(s.prompts_expired, 2);
  EXPECT_EQ(s.prompts_reissued, 2);
  EXPECT_EQ(s.position, 3 + 1 + 2);
  EXPECT_EQ(s.leases_active, 2);  // w2's (expires 1 s later than w1's) and w3's
  ExpectLedgerIdentities(s);

  // A late trajectory of the expired lease is accepted and counted once.
  pool->Complete(lease->lease_id(), first[0]);
  pool->Complete(lease->lease_id(), first[0]);
  s = pool->Stats();
  EXPECT_EQ(s.late_completions, 1);
  EXPECT_EQ(s.ignored_completions, 1);
  EXPECT_EQ(s.prompts_completed, 1);
  ExpectLedgerIdentities(s);
  EXPECT_EQ(pool->Return(lease->lease_id()).status().code(), absl::StatusCode::kNotFound);
}

TEST(PromptPoolTest, CompleteAfterDeadlineIsLateEvenWithoutAnotherLease) {
  FakeClock clock;
  auto pool = MakePool(10, &clock);
  auto lease = pool->Lease("w", 2);
  ASSERT_TRUE(lease.ok());
  clock.Advance(absl::Seconds(61));
  pool->Complete(lease->lease_id(), lease->prompts(0).index());
  const PromptPoolStats s = pool->Stats();
  EXPECT_EQ(s.prompts_completed, 0);
  EXPECT_EQ(s.late_completions, 1);
  EXPECT_EQ(s.prompts_expired, 2);
  EXPECT_EQ(s.requeued, 2);
  ExpectLedgerIdentities(s);
}

TEST(PromptPoolTest, ReturnRequeuesNotCompletedPromptsAtOnce) {
  auto pool = MakePool(10, nullptr);
  auto lease = pool->Lease("w1", 3);
  ASSERT_TRUE(lease.ok());
  const std::vector<int64_t> first = Indices(*lease);
  pool->Complete(lease->lease_id(), first[0]);
  auto returned = pool->Return(lease->lease_id());
  ASSERT_TRUE(returned.ok());
  EXPECT_EQ(*returned, 2);
  EXPECT_EQ(pool->Return(lease->lease_id()).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(pool->Return("L999").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(pool->Return("garbage").status().code(), absl::StatusCode::kNotFound);
  auto next = pool->Lease("w2", 2);
  ASSERT_TRUE(next.ok());
  EXPECT_THAT(Indices(*next), ElementsAre(first[1], first[2]));
  const PromptPoolStats s = pool->Stats();
  EXPECT_EQ(s.prompts_returned, 2);
  EXPECT_EQ(s.position, 3);
  ExpectLedgerIdentities(s);
}

TEST(PromptPoolTest, CompleteIsHarmlessForUnknownLeasesAndRepeats) {
  auto pool = MakePool(10, nullptr);
  auto lease = pool->Lease("w", 2);
  ASSERT_TRUE(lease.ok());
  const std::vector<int64_t> idx = Indices(*lease);
  pool->Complete("nope", idx[0]);
  pool->Complete("L999", idx[0]);
  pool->Complete(lease->lease_id(), 12345);  // not in the lease
  pool->Complete(lease->lease_id(), idx[0]);
  pool->Complete(lease->lease_id(), idx[0]);  // repeat
  PromptPoolStats s = pool->Stats();
  EXPECT_EQ(s.prompts_completed, 1);
  EXPECT_EQ(s.ignored_completions, 4);
  EXPECT_EQ(s.leases_active, 1);
  pool->Complete(lease->lease_id(), idx[1]);  // the lease is done
  s = pool->Stats();
  EXPECT_EQ(s.leases_active, 0);
  EXPECT_EQ(s.outstanding, 0);
  ExpectLedgerIdentities(s);
  EXPECT_EQ(pool->Return(lease->lease_id()).status().code(), absl::StatusCode::kNotFound);
}

TEST(PromptPoolTest, CloseStopsLeasingButNotReturnsOrCompletions) {
  auto pool = MakePool(10, nullptr);
  auto a = pool->Lease("w", 2);
  auto b = pool->Lease("w", 2);
  ASSERT_TRUE(a.ok() && b.ok());
  pool->Close();
  EXPECT_EQ(pool->Lease("w", 1).status().code(), absl::StatusCode::kFailedPrecondition);
  pool->Complete(a->lease_id(), a->prompts(0).index());
  EXPECT_EQ(*pool->Return(b->lease_id()), 2);
  const PromptPoolStats s = pool->Stats();
  EXPECT_EQ(s.prompts_completed, 1);
  EXPECT_EQ(s.outstanding, 1);
  ExpectLedgerIdentities(s);
}

// ---- The ledger under random operations -------------------------------------------------------

TEST(PromptPoolTest, LedgerIdentitiesHoldUnderRandomOperations) {
  FakeClock clock;
  auto pool = MakePool(17, &clock, /*seed=*/3);
  std::mt19937 rng(12345);
  std::map<std::string, std::vector<int64_t>> issued;  // every lease ever granted
  std::vector<std::string> ids;
  int64_t completions = 0;
  for (int step = 0; step < 5000; ++step) {
    const int op = std::uniform_int_distribution<int>(0, 9)(rng);
    if (op < 3 || ids.empty()) {
      auto lease = pool->Lease("w", std::uniform_int_distribution<int>(1, 8)(rng));
      ASSERT_TRUE(lease.ok());
      issued[lease->lease_id()] = Indices(*lease);
      ids.push_back(lease->lease_id());
    } else {
      const std::string& id = ids[std::uniform_int_distribution<size_t>(0, ids.size() - 1)(rng)];
      const std::vector<int64_t>& idx = issued[id];
      if (op < 7) {
        pool->Complete(id, idx[std::uniform_int_distribution<size_t>(0, idx.size() - 1)(rng)]);
        ++completions;
      } else if (op < 8) {
        (void)pool->Return(id);
      } else {
        clock.Advance(absl::Seconds(std::uniform_int_distribution<int>(0, 20)(rng)));
      }
    }
    const PromptPoolStats s = pool->Stats();
    ExpectLedgerIdentities(s);
    ASSERT_EQ(completions, s.prompts_completed + s.late_completions + s.ignored_completions);
    ASSERT_EQ(s.prompts_leased, s.prompts_reissued + s.position);
  }
  const PromptPoolStats s = pool->Stats();
  // The workload reached every path.
  EXPECT_GT(s.prompts_completed, 0);
  EXPECT_GT(s.prompts_returned, 0);
  EXPECT_GT(s.prompts_expired, 0);
  EXPECT_GT(s.late_completions, 0);
  EXPECT_GT(s.ignored_completions, 0);
  EXPECT_GT(s.prompts_reissued, 0);
}

// ---- Groups (RLOO / GRPO) --------------------------------------------------------------------

TEST(PromptPoolGroupTest, LeasesHoldWholeGroupsOfCopies) {
  auto pool = MakePool(10, nullptr, /*seed=*/1, /*group_size=*/4);
  EXPECT_EQ(pool->LeaseSize(8), 8);
  EXPECT_EQ(pool->LeaseSize(9), 8);
  EXPECT_EQ(pool->LeaseSize(2), 4);  // at least one whole group
  auto lease = pool->Lease("w", 9);
  ASSERT_TRUE(lease.ok()) << lease.status();
  const std::vector<int64_t> idx = Indices(*lease);
  ASSERT_EQ(idx.size(), 8u);
  EXPECT_EQ(std::set<int64_t>(idx.begin(), idx.begin() + 4).size(), 1u);
  EXPECT_EQ(std::set<int64_t>(idx.begin() + 4, idx.end()).size(), 1u);
  EXPECT_NE(idx[0], idx[4]);
  EXPECT_EQ(pool->position(), 2);  // one fresh draw per group
  EXPECT_EQ(pool->Stats().outstanding, 8);
}

TEST(PromptPoolGroupTest, AnEndedLeaseRequeuesIncompleteGroupsWholeAndReportsThem) {
  FakeClock clock;
  auto pool = MakePool(10, &clock, /*seed=*/1, /*group_size=*/2);
  auto lease = pool->Lease("w", 6);  // groups a a b b c c
  ASSERT_TRUE(lease.ok());
  const std::vector<int64_t> idx = Indices(*lease);
  pool->Complete(lease->lease_id(), idx[0]);  // a: complete
  pool->Complete(lease->lease_id(), idx[1]);
  pool->Complete(lease->lease_id(), idx[2]);  // b: one of two; c: none
  EXPECT_TRUE(pool->TakeVoidedGroups().empty());
  clock.Advance(absl::Seconds(61));
  pool->Expire();
  const std::vector<PromptPool::VoidedGroup> voided = pool->TakeVoidedGroups();
  ASSERT_EQ(voided.size(), 2u);
  EXPECT_EQ(voided[0].lease_id, lease->lease_id());
  EXPECT_EQ(voided[0].prompt_index, idx[2]);
  EXPECT_EQ(voided[1].prompt_index, idx[4]);
  EXPECT_TRUE(pool->TakeVoidedGroups().empty());
  PromptPoolStats s = pool->Stats();
  EXPECT_EQ(s.prompts_expired, 3);
  EXPECT_EQ(s.completions_voided, 1);  // b's completed sample is generated again
  EXPECT_EQ(s.requeued, 4);
  ExpectLedgerIdentities(s);
  // Reissued first, as whole groups.
  auto again = pool->Lease("w", 4);
  ASSERT_TRUE(again.ok());
  EXPECT_THAT(Indices(*again), ElementsAre(idx[2], idx[2], idx[4], idx[4]));
  EXPECT_EQ(pool->Stats().prompts_reissued, 4);
  ExpectLedgerIdentities(pool->Stats());
}

TEST(PromptPoolGroupTest, LeaseNumbersCanStartLater) {
  auto pool = MakePool(3, nullptr, /*seed=*/1, /*group_size=*/2);
  ASSERT_TRUE(pool->StartLeaseNumbersAt(uint64_t{7} << 32).ok());
  ASSERT_TRUE(pool->Restore(5).ok());
  auto lease = pool->Lease("w", 2);
  ASSERT_TRUE(lease.ok());
  EXPECT_EQ(lease->lease_id(), absl::StrCat("L", uint64_t{7} << 32));
  EXPECT_EQ(pool->StartLeaseNumbersAt(1).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(pool->Return(lease->lease_id()).ok());  // the long ids parse
  EXPECT_EQ(pool->TakeVoidedGroups().size(), 1u);
}

TEST(PromptPoolGroupTest, GroupSizeBeyondTheLeaseLimitIsRejected) {
  PromptPoolOptions options;
  options.max_lease_prompts = 4;
  options.group_size = 5;
  EXPECT_EQ(Validate(options).code(), absl::StatusCode::kInvalidArgument);
  options.group_size = 0;
  EXPECT_EQ(Validate(options).code(), absl::StatusCode::kInvalidArgument);
}

TEST(PromptPoolTest, ConcurrentWorkersKeepTheLedger) {
  auto pool = MakePool(50, nullptr);
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w) {
    workers.emplace_back([&pool, w] {
      for (int i = 0; i < 200; ++i) {
        auto lease = pool->Lease(absl::StrCat("w", w), 4);
        ASSERT_TRUE(lease.ok());
        if (i % 5 == 0) {
          ASSERT_TRUE(pool->Return(lease->lease_id()).ok());
          continue;
        }
        for (const auto& p : lease->prompts()) pool->Complete(lease->lease_id(), p.index());
      }
    });
  }
  for (auto& t : workers) t.join();
  const PromptPoolStats s = pool->Stats();
  EXPECT_EQ(s.prompts_leased, 4 * 200 * 4);
  EXPECT_EQ(s.prompts_returned, 4 * 40 * 4);
  EXPECT_EQ(s.prompts_completed, 4 * 160 * 4);
  EXPECT_EQ(s.leases_active, 0);
  ExpectLedgerIdentities(s);
}

}  // namespace
}  // namespace rlhf::learner
