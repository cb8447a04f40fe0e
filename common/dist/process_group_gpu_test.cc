// The CUDA path: NCCL where this LibTorch has it, else CUDA tensors staged through Gloo. Skips on
// machines without CUDA (Debian's LibTorch is CPU-only), so CI stays green and honest.
#include <memory>
#include <vector>

#include "common/dist/gradient_sync.h"
#include "common/dist/process_group.h"
#include "common/testing/dist_ranks.h"
#include "gtest/gtest.h"

namespace rlhf::dist {
namespace {

TEST(ProcessGroupGpuTest, CudaTensorsReduceAndBroadcast) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "CUDA is not available";
  // Two ranks on the one GPU the test sees (NCCL refuses two ranks on one device; with two or
  // more devices each rank takes its own).
  const int devices = static_cast<int>(torch::cuda::device_count());
  const int port = testing::FreeLoopbackPort();
  testing::RunRanks(2, [&](int rank) {
    DistOptions o;
    o.master_port = port;
    o.rank = rank;
    o.world_size = 2;
    o.local_rank = rank % devices;
    o.timeout = absl::Seconds(60);
    o.use_nccl = devices >= 2;
    auto group = ProcessGroup::Create(o);
    ASSERT_TRUE(group.ok()) << group.status();
    const torch::Device device(torch::kCUDA, o.local_rank);
    torch::Tensor a = torch::full({1000}, static_cast<float>(rank + 1), device);
    torch::Tensor b =
        torch::full({3}, int64_t{rank}, torch::TensorOptions(device).dtype(torch::kInt64));
    ASSERT_TRUE((*group)->AllReduceSum({a}).ok());
    ASSERT_TRUE((*group)->Broadcast({b}).ok());
    EXPECT_TRUE(a.cpu().equal(torch::full({1000}, 3.0f)));
    EXPECT_TRUE(b.cpu().equal(torch::zeros({3}, torch::kInt64)));
    EXPECT_TRUE(a.is_cuda());

    torch::Tensor p = torch::zeros({64, 64}, device).requires_grad_();
    p.mutable_grad() = torch::full({64, 64}, static_cast<float>(rank), device);
    GradientSync sync(group->get(), {p}, 1024);
    ASSERT_TRUE(sync.Sync().ok());
    EXPECT_TRUE(p.grad().cpu().allclose(torch::full({64, 64}, 0.5f)));
  });
}

}  // namespace
}  // namespace rlhf::dist
