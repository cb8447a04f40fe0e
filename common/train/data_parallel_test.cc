// Data-parallel training equals single-process training: two ranks (threads of this process, a
// Gloo group on loopback) splitting each global batch end at the parameters one process reaches
// on whole batches.
#include "common/train/data_parallel.h"

#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "common/testing/dist_ranks.h"
#include "common/testing/tiny_llama.h"
#include "common/train/reward_trainer.h"
#include "common/train/sft_trainer.h"
#include "common/train/train_test_util.h"
#include "gtest/gtest.h"

namespace rlhf::train {
namespace {

using ::rlhf::testing::FreeLoopbackPort;
using ::rlhf::testing::RunRanks;
using ::rlhf::train::testing::SyntheticExamples;
using ::rlhf::train::testing::SyntheticPairs;
using ::rlhf::train::testing::TinyRewardConfig;

constexpr int kWorld = 2;
constexpr double kTolerance = 1e-5;

std::unique_ptr<dist::ProcessGroup> JoinGroup(int port, int rank) {
  return ::rlhf::testing::JoinGroup(port, rank, kWorld);
}

double MaxAbsDiff(model::Llama& a, model::Llama& b) {
  auto pa = a->named_parameters();
  auto pb = b->named_parameters();
  EXPECT_EQ(pa.size(), pb.size());
  double max = 0;
  for (const auto& p : pa) {
    max = std::max(max, (p.value() - pb[p.key()]).abs().max().item<double>());
  }
  return max;
}

RewardTrainerOptions RewardOptions() {
  RewardTrainerOptions o;
  o.optim.learning_rate = 3e-3;
  o.optim.warmup_steps = 2;
  o.optim.total_steps = 6;
  o.batch_pairs = 16;
  o.micro_batch_pairs = 8;
  return o;
}

TEST(DataParallelTest, TwoRewardRanksMatchOneProcess) {
  torch::set_num_threads(1);
  constexpr int kSteps = 6;
  const auto pairs = SyntheticPairs(24, 2);  // batches straddle epochs
  auto single_model = model::CreateRandomLlama(TinyRewardConfig(), 5);
  ASSERT_TRUE(single_model.ok());
  auto single = RewardTrainer::Create(*single_model, pairs, RewardOptions());
  ASSERT_TRUE(single.ok()) << single.status();
  std::vector<RewardStepStats> single_stats;
  for (int i = 0; i < kSteps; ++i) {
    auto s = (*single)->Step();
    ASSERT_TRUE(s.ok()) << s.status();
    single_stats.push_back(*s);
  }

  // Rank 1 starts from other weights: Create must give it rank 0's.
  std::vector<model::Llama> models;
  for (uint64_t seed : {5, 6})
    models.push_back(*model::CreateRandomLlama(TinyRewardConfig(), seed));
  const std::string dir = ::testing::TempDir() + "/dp_reward";
  std::filesystem::remove_all(dir);
  const int port = FreeLoopbackPort();
  RunRanks(kWorld, [&](int rank) {
    auto group = JoinGroup(port, rank);
    ASSERT_NE(group, nullptr);
    RewardTrainerOptions o = RewardOptions();
    o.process_group = group.get();
    o.grad_bucket_bytes = 16 << 10;  // several buckets
    auto trainer = RewardTrainer::Create(models[rank], pairs, o);
    ASSERT_TRUE(trainer.ok()) << trainer.status();
    EXPECT_EQ((*trainer)->is_main(), rank == 0);
    for (int i = 0; i < kSteps; ++i) {
      auto s = (*trainer)->Step();
      ASSERT_TRUE(s.ok()) << s.status();
      EXPECT_NEAR(s->loss, single_stats[i].loss, 1e-6) << "step " << i;
      EXPECT_DOUBLE_EQ(s->accuracy, single_stats[i].accuracy) << "step " << i;
      EXPECT_NEAR(s->grad_norm, single_stats[i].grad_norm, 1e-5) << "step " << i;
    }
    // One writer; every rank restores (a shared directory here).
    const absl::Status saved = (*trainer)->Save(dir);
    EXPECT_EQ(saved.code(),
              rank == 0 ? absl::StatusCode::kOk : absl::StatusCode::kFailedPrecondition)
        << saved;
    ASSERT_TRUE(group->Barrier().ok());
    const absl::Status restored = (*trainer)->Restore(dir);
    EXPECT_TRUE(restored.ok()) << restored;
    EXPECT_EQ((*trainer)->step(), kSteps);
  });
  const double diff0 = MaxAbsDiff((*single)->model(), models[0]);
  const double diff1 = MaxAbsDiff((*single)->model(), models[1]);
  EXPECT_LE(diff0, kTolerance);
  EXPECT_LE(diff1, kTolerance);
  EXPECT_EQ(MaxAbsDiff(models[0], models[1]), 0.0);  // the ranks stay bit-identical
  std::cout << "reward: max |single - rank0| " << diff0 << ", |single - rank1| " << diff1 << "\n";
}

TEST(DataParallelTest, RanksWithDifferentOrBadInputsAllFail) {
  torch::set_num_threads(1);
  const auto pairs = SyntheticPairs(8, 3);
  auto other = pairs;
  other[5].chosen[0] = other[5].chosen[0] == 10 ? 11 : 10;
  auto bad = pairs;
  bad[2].rejected.push_back(99);  // outside the vocabulary
  std::vector<model::Llama> models;
  for (int r = 0; r < kWorld; ++r)
    models.push_back(*model::CreateRandomLlama(TinyRewardConfig(), 1));
  const int port = FreeLoopbackPort();
  RunRanks(kWorld, [&](int rank) {
    auto group = JoinGroup(port, rank);
    ASSERT_NE(group, nullptr);
    RewardTrainerOptions o = RewardOptions();
    o.process_group = group.get();
    auto differ = RewardTrainer::Create(models[rank], rank == 0 ? pairs : other, o);
    EXPECT_EQ(differ.status().code(), absl::StatusCode::kFailedPrecondition) << differ.status();
    auto invalid = RewardTrainer::Create(models[rank], rank == 0 ? pairs : bad, o);
    EXPECT_EQ(invalid.status().code(), rank == 0 ? absl::StatusCode::kFailedPrecondition
                                                 : absl::StatusCode::kInvalidArgument)
        << invalid.status();
    o.micro_batch_pairs = 16;  // more than the 8 pairs per rank
    EXPECT_EQ(RewardTrainer::Create(models[rank], pairs, o).status().code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(group->Barrier().ok());  // the group is still in step
  });
}

SftTrainerOptions SftOptions() {
  SftTrainerOptions o;
  o.optim.learning_rate = 3e-3;
  o.optim.warmup_steps = 2;
  o.optim.total_steps = 5;
  o.batch_sequences = 16;
  o.micro_batch_sequences = 8;
  o.bucket_batches = 2;
  return o;
}

TEST(DataParallelTest, TwoSftRanksMatchOneProcess) {
  torch::set_num_threads(1);
  constexpr int kSteps = 5;
  // 3 batches per epoch, the last of 5 sequences: split 2 / 3 between the ranks, with different
  // token counts, so the global token normalisation matters.
  const auto examples = SyntheticExamples(37, 3);
  const auto held_out = SyntheticExamples(11, 4);
  auto single_model = model::CreateRandomLlama(::rlhf::testing::TinyLlamaConfig(), 5);
  auto single = SftTrainer::Create(*single_model, examples, SftOptions());
  ASSERT_TRUE(single.ok()) << single.status();
  std::vector<SftStepStats> single_stats;
  for (int i = 0; i < kSteps; ++i) {
    auto s = (*single)->Step();
    ASSERT_TRUE(s.ok()) << s.status();
    single_stats.push_back(*s);
  }
  auto single_eval = (*single)->EvalLoss(held_out, 4);
  ASSERT_TRUE(single_eval.ok());

  std::vector<model::Llama> models;
  for (uint64_t seed : {5, 6}) {
    models.push_back(*model::CreateRandomLlama(::rlhf::testing::TinyLlamaConfig(), seed));
  }
  const int port = FreeLoopbackPort();
  RunRanks(kWorld, [&](int rank) {
    auto group = JoinGroup(port, rank);
    ASSERT_NE(group, nullptr);
    SftTrainerOptions o = SftOptions();
    o.process_group = group.get();
    o.grad_bucket_bytes = 16 << 10;
    auto trainer = SftTrainer::Create(models[rank], examples, o);
    ASSERT_TRUE(trainer.ok()) << trainer.status();
    for (int i = 0; i < kSteps; ++i) {
      auto s = (*trainer)->Step();
      ASSERT_TRUE(s.ok()) << s.status();
      EXPECT_EQ(s->tokens, single_stats[i].tokens) << "step " << i;
      EXPECT_NEAR(s->loss, single_stats[i].loss, 1e-6) << "step " << i;
    }
    auto eval = (*trainer)->EvalLoss(held_out, 4);
    ASSERT_TRUE(eval.ok()) << eval.status();
    EXPECT_NEAR(*eval, *single_eval, 1e-5);
  });
  const double diff0 = MaxAbsDiff((*single)->model(), models[0]);
  const double diff1 = MaxAbsDiff((*single)->model(), models[1]);
  EXPECT_LE(diff0, kTolerance);
  EXPECT_LE(diff1, kTolerance);
  EXPECT_EQ(MaxAbsDiff(models[0], models[1]), 0.0);
  std::cout << "sft: max |single - rank0| " << diff0 << ", |single - rank1| " << diff1 << "\n";
}

TEST(DataParallelTest, RankSlicesCoverTheBatch) {
  EXPECT_EQ(RankSlice(5, nullptr), std::make_pair(int64_t{0}, int64_t{5}));
  auto single = dist::ProcessGroup::CreateSingle();
  EXPECT_EQ(RankSlice(5, single.get()), std::make_pair(int64_t{0}, int64_t{5}));
  Fingerprint a, b;
  a.Add(1);
  b.Add(2);
  EXPECT_NE(a.value(), b.value());
}

}  // namespace
}  // namespace rlhf::train
