#include "common/dist/gradient_sync.h"

#include <memory>
#include <vector>

#include "common/testing/dist_ranks.h"
#include "gtest/gtest.h"

namespace rlhf::dist {
namespace {

using ::rlhf::testing::FreeLoopbackPort;
using ::rlhf::testing::RunRanks;

// Parameters of 10, 12, 100, 7 and 4 floats, then one only rank 1 has a grad for, then one
// no rank has a grad for.
std::vector<torch::Tensor> Parameters() {
  std::vector<torch::Tensor> p;
  for (auto shape : std::vector<std::vector<int64_t>>{{10}, {3, 4}, {100}, {7}, {2, 2}, {3}, {5}}) {
    p.push_back(torch::zeros(shape).requires_grad_());
  }
  return p;
}

// Rank r's gradient of parameter i (i < 5), or of the rank-1-only parameter (i = 5).
torch::Tensor Grad(const torch::Tensor& p, int rank, int i) {
  return torch::arange(p.numel(), torch::kFloat32).view(p.sizes()) * (rank + 1) + i;
}

void SetGrads(std::vector<torch::Tensor>& params, int rank) {
  for (int i = 0; i < 5; ++i) params[i].mutable_grad() = Grad(params[i], rank, i);
  if (rank == 1) params[5].mutable_grad() = Grad(params[5], rank, 5);
}

TEST(GradientSyncTest, BucketsAverageTheRanksGradients) {
  torch::set_num_threads(1);
  const int port = FreeLoopbackPort();
  RunRanks(2, [&](int rank) {
    DistOptions o;
    o.master_port = port;
    o.rank = rank;
    o.world_size = 2;
    o.timeout = absl::Seconds(20);
    auto group = ProcessGroup::Create(o);
    ASSERT_TRUE(group.ok()) << group.status();
    std::vector<torch::Tensor> params = Parameters();

    // 64-byte buckets: {10}, {12}, {100}, {7, 4, 3} (4 + 3 floats join the 7).
    GradientSync small(group->get(), params, /*bucket_bytes=*/64);
    SetGrads(params, rank);
    ASSERT_TRUE(small.Sync().ok());
    EXPECT_EQ(small.num_buckets_last_sync(), 4);
    for (int i = 0; i < 5; ++i) {
      const torch::Tensor expected = (Grad(params[i], 0, i) + Grad(params[i], 1, i)) / 2;
      EXPECT_TRUE(params[i].grad().allclose(expected)) << i << ": " << params[i].grad();
    }
    // Zero on rank 0, its own on rank 1: half of rank 1's everywhere.
    ASSERT_TRUE(params[5].grad().defined());
    EXPECT_TRUE(params[5].grad().allclose(Grad(params[5], 1, 5) / 2));
    // No rank had one: still none, as in a single process.
    EXPECT_FALSE(params[6].grad().defined());

    // The default 25 MB: everything in one bucket.
    std::vector<torch::Tensor> more = Parameters();
    GradientSync one(group->get(), more);
    SetGrads(more, rank);
    ASSERT_TRUE(one.Sync().ok());
    EXPECT_EQ(one.num_buckets_last_sync(), 1);
    EXPECT_TRUE(more[2].grad().allclose((Grad(more[2], 0, 2) + Grad(more[2], 1, 2)) / 2));
  });
}

TEST(GradientSyncTest, ASingleProcessKeepsItsGradients) {
  auto group = ProcessGroup::CreateSingle();
  std::vector<torch::Tensor> params = Parameters();
  SetGrads(params, 0);
  GradientSync sync(group.get(), params, 64);
  ASSERT_TRUE(sync.Sync().ok());
  EXPECT_EQ(sync.num_buckets_last_sync(), 0);
  EXPECT_TRUE(params[2].grad().equal(Grad(params[2], 0, 2)));
}

}  // namespace
}  // namespace rlhf::dist
