#include "common/dist/process_group.h"

#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/testing/dist_ranks.h"
#include "gtest/gtest.h"

namespace rlhf::dist {
namespace {

using ::rlhf::testing::FreeLoopbackPort;
using ::rlhf::testing::RunRanks;

DistOptions RankOptions(int port, int rank, int world_size, absl::Duration timeout) {
  DistOptions o;
  o.master_addr = "127.0.0.1";
  o.master_port = port;
  o.rank = rank;
  o.world_size = world_size;
  o.timeout = timeout;
  return o;
}

// Creates the world_size groups concurrently (each Create waits for the others).
std::vector<std::unique_ptr<ProcessGroup>> CreateGroups(
    int world_size, absl::Duration timeout = absl::Seconds(20)) {
  const int port = FreeLoopbackPort();
  std::vector<std::unique_ptr<ProcessGroup>> groups(world_size);
  RunRanks(world_size, [&](int rank) {
    auto g = ProcessGroup::Create(RankOptions(port, rank, world_size, timeout));
    ASSERT_TRUE(g.ok()) << g.status();
    groups[rank] = std::move(*g);
  });
  return groups;
}

TEST(ProcessGroupTest, ASingleProcessNeedsNoCommunication) {
  auto g = ProcessGroup::Create(DistOptions());
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ((*g)->backend(), "none");
  EXPECT_EQ((*g)->world_size(), 1);
  EXPECT_TRUE((*g)->is_main());
  torch::Tensor t = torch::arange(4, torch::kFloat32);
  ASSERT_TRUE((*g)->AllReduceMean({t}).ok());
  ASSERT_TRUE((*g)->Broadcast({t}).ok());
  EXPECT_TRUE(t.equal(torch::arange(4, torch::kFloat32)));
  std::string bytes = "abc";
  ASSERT_TRUE((*g)->BroadcastBytes(&bytes).ok());
  EXPECT_EQ(bytes, "abc");
  EXPECT_TRUE((*g)->Barrier().ok());
  EXPECT_TRUE((*g)->CheckSameOnAllRanks(42, "x").ok());
  // Arguments are checked even without peers, so a bug shows in single-process runs too.
  EXPECT_EQ((*g)->AllReduceMean({torch::ones({2}, torch::kInt64)}).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ProcessGroupTest, TwoRanksReduceAndBroadcast) {
  torch::set_num_threads(1);
  auto groups = CreateGroups(2);
  ASSERT_TRUE(groups[0] && groups[1]);
  EXPECT_EQ(groups[0]->backend(), "gloo");
  RunRanks(2, [&](int rank) {
    ProcessGroup& g = *groups[rank];
    EXPECT_EQ(g.rank(), rank);
    EXPECT_EQ(g.world_size(), 2);
    // A list of mixed dtypes and a non-contiguous view: one collective per dtype.
    torch::Tensor a = torch::full({2, 3}, static_cast<float>(rank + 1));
    torch::Tensor b = torch::arange(6, torch::kFloat32).view({3, 2}).t() * (rank + 1);  // view
    torch::Tensor c = torch::full({5}, int64_t{10} * (rank + 1), torch::kInt64);
    ASSERT_TRUE(g.AllReduceSum({a, b, c}).ok());
    EXPECT_TRUE(a.equal(torch::full({2, 3}, 3.0f)));
    EXPECT_TRUE(b.equal(torch::arange(6, torch::kFloat32).view({3, 2}).t() * 3));
    EXPECT_TRUE(c.equal(torch::full({5}, int64_t{30}, torch::kInt64)));

    torch::Tensor m = torch::tensor({1.0 + rank, -2.0 * rank}, torch::kFloat64);
    ASSERT_TRUE(g.AllReduceMean({m}).ok());
    EXPECT_TRUE(m.equal(torch::tensor({1.5, -1.0}, torch::kFloat64))) << m;
    torch::Tensor mx = torch::tensor({rank, -rank}, torch::kInt32);
    ASSERT_TRUE(g.AllReduce({mx}, ReduceOp::kMax).ok());
    EXPECT_TRUE(mx.equal(torch::tensor({1, 0}, torch::kInt32))) << mx;

    torch::Tensor w = torch::full({3}, static_cast<float>(rank + 7));
    torch::Tensor v = torch::full({2}, int64_t{rank}, torch::kInt64);
    ASSERT_TRUE(g.Broadcast({w, v}).ok());
    EXPECT_TRUE(w.equal(torch::full({3}, 7.0f)));
    EXPECT_TRUE(v.equal(torch::zeros({2}, torch::kInt64)));

    std::string big(3 << 20, 'x');
    for (size_t i = 0; i < big.size(); i += 4099) big[i] = static_cast<char>(i % 251);
    std::string bytes = rank == 0 ? big : "stale";
    ASSERT_TRUE(g.BroadcastBytes(&bytes).ok());
    EXPECT_TRUE(bytes == big);
    std::string empty = rank == 0 ? "" : "stale";
    ASSERT_TRUE(g.BroadcastBytes(&empty).ok());
    EXPECT_EQ(empty, "");
    EXPECT_TRUE(g.Barrier().ok());

    EXPECT_TRUE(g.CheckSameOnAllRanks(int64_t{1} << 62, "same").ok());
    EXPECT_EQ(g.CheckSameOnAllRanks(rank, "the data").code(),
              absl::StatusCode::kFailedPrecondition);
    const absl::Status local = rank == 1 ? absl::NotFoundError("no file") : absl::OkStatus();
    const absl::Status agreed = g.AllOk(local);
    EXPECT_EQ(agreed.code(),
              rank == 1 ? absl::StatusCode::kNotFound : absl::StatusCode::kFailedPrecondition)
        << agreed;
    EXPECT_TRUE(g.AllOk(absl::OkStatus()).ok());
  });
}

TEST(ProcessGroupTest, ARankThatNeverJoinsFailsCreateAfterTheTimeout) {
  const int port = FreeLoopbackPort();
  const absl::Time start = absl::Now();
  auto g = ProcessGroup::Create(RankOptions(port, 0, 2, absl::Seconds(2)));
  const absl::Duration took = absl::Now() - start;
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), absl::StatusCode::kDeadlineExceeded) << g.status();
  EXPECT_GE(took, absl::Seconds(1));
  EXPECT_LT(took, absl::Seconds(15));
  std::cout << "after " << took << ": " << g.status() << "\n";
  // A non-zero rank with no store to connect to fails the same way.
  auto orphan = ProcessGroup::Create(RankOptions(FreeLoopbackPort(), 1, 2, absl::Seconds(2)));
  EXPECT_EQ(orphan.status().code(), absl::StatusCode::kDeadlineExceeded) << orphan.status();
  std::cout << orphan.status() << "\n";
}

TEST(ProcessGroupTest, APeerThatStopsCallingFailsTheCollectiveAfterTheTimeout) {
  auto groups = CreateGroups(2, absl::Seconds(2));
  ASSERT_TRUE(groups[0] && groups[1]);
  // Rank 1 stays alive but never calls the all-reduce.
  const absl::Time start = absl::Now();
  torch::Tensor t = torch::ones({8});
  const absl::Status s = groups[0]->AllReduceSum({t});
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_GE(took, absl::Seconds(1));
  EXPECT_LT(took, absl::Seconds(15));
  std::cout << "after " << took << ": " << s << "\n";
  // The group is broken for good: no call waits again.
  EXPECT_EQ(groups[0]->Barrier().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(groups[0]->Broadcast({t}).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(ProcessGroupTest, APeerThatDiesFailsTheCollective) {
  auto groups = CreateGroups(2, absl::Seconds(5));
  ASSERT_TRUE(groups[0] && groups[1]);
  groups[1].reset();  // closes its connections, as a crashed process would
  const absl::Time start = absl::Now();
  torch::Tensor t = torch::ones({8});
  const absl::Status s = groups[0]->AllReduceSum({t});
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(s.code() == absl::StatusCode::kUnavailable ||
              s.code() == absl::StatusCode::kDeadlineExceeded)
      << s;
  EXPECT_LT(absl::Now() - start, absl::Seconds(15));
  std::cout << "after " << absl::Now() - start << ": " << s << "\n";
}

}  // namespace
}  // namespace rlhf::dist
