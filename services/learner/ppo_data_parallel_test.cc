// Data-parallel PPO equals single-process PPO: two ranks (threads of this process, a Gloo group on
// loopback) stepping on the same batches, each computing its share of every minibatch, end at the
// parameters and statistics one process reaches on the whole minibatches.
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/dist/process_group.h"
#include "common/testing/dist_ranks.h"
#include "gtest/gtest.h"
#include "services/learner/ppo_test_util.h"
#include "services/learner/ppo_trainer.h"

namespace rlhf::learner {
namespace {

using ::rlhf::testing::FreeLoopbackPort;
using ::rlhf::testing::RunRanks;
using testing::SampleTrajectories;

constexpr int kWorld = 2;
constexpr int kSteps = 3;
constexpr double kTolerance = 1e-5;

std::unique_ptr<dist::ProcessGroup> JoinGroup(int port, int rank) {
  return ::rlhf::testing::JoinGroup(port, rank, kWorld);
}

struct Models {
  model::Llama policy{nullptr};
  model::Llama critic{nullptr};
};

// A tiny random policy (seeded) and its critic. Only from the main thread: CreateRandomLlama
// seeds and draws from LibTorch's global generator.
Models MakeModels(uint64_t seed = 3, bool float64 = false) {
  Models m;
  auto policy = model::CreateRandomLlama(testing::TinyPolicyConfig(), seed);
  EXPECT_TRUE(policy.ok()) << policy.status();
  m.policy = *policy;
  auto critic = PpoTrainer::CriticFromPolicy(m.policy);
  EXPECT_TRUE(critic.ok()) << critic.status();
  m.critic = *critic;
  if (float64) {
    m.policy->to(torch::kFloat64);
    m.critic->to(torch::kFloat64);
  }
  return m;
}

// `per_rank` fresh pairs of models for each rank: models[rank][i].
std::vector<std::vector<Models>> ModelsForRanks(int per_rank) {
  std::vector<std::vector<Models>> models(kWorld);
  for (int r = 0; r < kWorld; ++r) {
    for (int i = 0; i < per_rank; ++i) models[r].push_back(MakeModels(/*seed=*/3 + r));
  }
  return models;
}

absl::StatusOr<std::unique_ptr<PpoTrainer>> MakeTrainer(PpoTrainerOptions options,
                                                        dist::ProcessGroup* group,
                                                        const Models& models) {
  options.process_group = group;
  // RLOO/GRPO train no critic.
  return PpoTrainer::Create(
      models.policy, options.group_advantage ? model::Llama{nullptr} : models.critic, options);
}

// Batches of 10 trajectories; minibatches of 5 are split 2 / 3 between the ranks.
PpoTrainerOptions BaseOptions() {
  PpoTrainerOptions o;
  o.minibatch_size = 5;
  o.epochs = 2;
  o.learning_rate = 1e-3;
  o.critic_learning_rate = 1e-3;
  o.kl.init_kl_coef = 0.05;
  o.entropy_coef = 0.01;
  return o;
}

struct Case {
  std::string name;
  PpoTrainerOptions options;
  bool stale = false;  // every batch comes from the initial policy (version 0): steps 2 and 3 stale
  bool float64 = false;           // models in float64: the split is exact up to its rounding
  double tolerance = kTolerance;  // on parameters and statistics
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

std::vector<Case> Cases() {
  std::vector<Case> cases;
  cases.push_back({"Standard", BaseOptions()});
  Case decoupled{"DecoupledWithStaleTrajectories", BaseOptions(), /*stale=*/true};
  decoupled.options.decoupled = true;
  cases.push_back(decoupled);
  // Sequence-mean losses (the shares are in trajectories), and minibatches of 3, 3, 3, 1: in the
  // last one rank 0 has no trajectory at all.
  Case seq{"SequenceMeanLossesAndAnEmptyShare", BaseOptions()};
  seq.options.minibatch_size = 3;
  seq.options.step.policy.aggregation = rl::LossAggregation::kSeqMeanTokenMean;
  seq.options.step.value.aggregation = rl::LossAggregation::kSeqMeanTokenMean;
  cases.push_back(seq);
  // In float64 the rounding of float32 (which Adam amplifies where a gradient is near its
  // epsilon) is out of the way: what is left would be a difference in the math, including the
  // scale of the gradient (Adam hides a scale only up to its epsilon).
  Case exact = decoupled;
  exact.name = "DecoupledFloat64";
  exact.float64 = true;
  exact.tolerance = 1e-12;
  cases.push_back(exact);
  Case seq_exact = seq;
  seq_exact.name = "SequenceMeanUnwhitenedFloat64";
  seq_exact.options.whiten_advantages = false;
  seq_exact.float64 = true;
  seq_exact.tolerance = 1e-12;
  cases.push_back(seq_exact);
  // Critic-free RLOO on groups of 2: the minibatches' 2 / 3 split cuts groups between the ranks,
  // which must not matter (the advantages are the whole batch's, computed before the split).
  Case rloo{"RlooGroupsSplitBetweenRanksFloat64", BaseOptions()};
  rloo.options.group_advantage = rl::GroupAdvantageOptions{rl::GroupBaseline::kLeaveOneOut};
  rloo.options.group_size = 2;
  rloo.float64 = true;
  rloo.tolerance = 1e-12;
  cases.push_back(rloo);
  return cases;
}

std::vector<std::vector<rlhf::v1::Trajectory>> Batches(const Case& c) {
  auto policy = model::CreateRandomLlama(testing::TinyPolicyConfig(), 3);
  EXPECT_TRUE(policy.ok());
  std::vector<std::vector<rlhf::v1::Trajectory>> batches;
  const int k = c.options.group_size;
  for (int i = 0; i < kSteps; ++i) {
    // With groups: k copies of each sampled trajectory, rewards spread apart.
    auto sampled = SampleTrajectories(*policy, 10 / k, 8, /*seed=*/20 + i, /*favoured_token=*/7,
                                      "w", /*version=*/c.stale ? 0 : i);
    std::vector<rlhf::v1::Trajectory> batch;
    for (const rlhf::v1::Trajectory& t : sampled) {
      for (int j = 0; j < k; ++j) {
        batch.push_back(t);
        if (k > 1) batch.back().set_id(absl::StrCat(t.id(), "#", j));
        batch.back().set_reward(t.reward() + 0.3f * static_cast<float>(j));
      }
    }
    batches.push_back(std::move(batch));
  }
  return batches;
}

std::vector<torch::Tensor> AllParameters(PpoTrainer& t) {
  std::vector<torch::Tensor> out = t.policy()->parameters();
  if (t.critic().is_empty()) return out;
  for (const torch::Tensor& p : t.critic()->parameters()) out.push_back(p);
  return out;
}

double MaxAbsDiff(PpoTrainer& a, PpoTrainer& b) {
  const std::vector<torch::Tensor> pa = AllParameters(a), pb = AllParameters(b);
  EXPECT_EQ(pa.size(), pb.size());
  double max = 0;
  for (size_t i = 0; i < pa.size(); ++i) {
    max = std::max(max, (pa[i] - pb[i]).abs().max().item<double>());
  }
  return max;
}

// The statistics that do not measure time.
std::vector<double> Values(const PpoStepStats& s) {
  return {static_cast<double>(s.step),
          static_cast<double>(s.trajectories),
          static_cast<double>(s.tokens),
          s.score_mean,
          s.kl_mean,
          s.kl_coef,
          s.policy_loss,
          s.value_loss,
          s.clipfrac,
          s.value_clipfrac,
          s.approx_kl,
          s.entropy,
          s.explained_variance,
          s.response_length_mean,
          static_cast<double>(s.stale_trajectories),
          s.behaviour_weight_mean};
}

class PpoDataParallelTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override { torch::set_num_threads(1); }
};

// (1) the ranks end where one process ends, with its statistics; (2) they stay bit-identical.
TEST_P(PpoDataParallelTest, TwoRanksMatchOneProcess) {
  const Case& c = GetParam();
  const auto batches = Batches(c);
  auto single = MakeTrainer(c.options, nullptr, MakeModels(3, c.float64));
  ASSERT_TRUE(single.ok()) << single.status();
  std::vector<PpoStepStats> single_stats;
  for (const auto& batch : batches) {
    auto s = (*single)->Step(batch);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ(s->allreduce_seconds, 0.0);
    single_stats.push_back(*s);
  }
  if (c.stale) {
    EXPECT_EQ(single_stats[1].stale_trajectories, 10);
    EXPECT_NE(single_stats[2].behaviour_weight_mean, 1.0);
  }

  // Rank 1 starts from other weights: Create must give it rank 0's.
  const std::vector<Models> models = {MakeModels(3, c.float64), MakeModels(4, c.float64)};
  std::vector<std::unique_ptr<dist::ProcessGroup>> groups(kWorld);  // outlive the trainers
  std::vector<std::unique_ptr<PpoTrainer>> ranks(kWorld);
  std::vector<std::vector<PpoStepStats>> rank_stats(kWorld);
  const int port = FreeLoopbackPort();
  RunRanks(kWorld, [&](int rank) {
    groups[rank] = JoinGroup(port, rank);
    dist::ProcessGroup* group = groups[rank].get();
    ASSERT_NE(group, nullptr);
    PpoTrainerOptions o = c.options;
    o.grad_bucket_bytes = 16 << 10;  // several buckets
    auto trainer = MakeTrainer(o, group, models[rank]);
    ASSERT_TRUE(trainer.ok()) << trainer.status();
    EXPECT_EQ((*trainer)->is_main(), rank == 0);
    for (const auto& batch : batches) {
      auto s = (*trainer)->Step(batch);
      ASSERT_TRUE(s.ok()) << s.status();
      EXPECT_GT(s->allreduce_seconds, 0.0);
      EXPECT_LT(s->allreduce_seconds + s->optimizer_seconds, s->seconds);
      rank_stats[rank].push_back(*s);
    }
    ranks[rank] = std::move(*trainer);
  });
  ASSERT_NE(ranks[0], nullptr);
  ASSERT_NE(ranks[1], nullptr);
  ASSERT_EQ(rank_stats[0].size(), single_stats.size());
  ASSERT_EQ(rank_stats[1].size(), single_stats.size());

  double max_stat_diff = 0;
  for (int i = 0; i < kSteps; ++i) {
    const std::vector<double> want = Values(single_stats[i]);
    const std::vector<double> got0 = Values(rank_stats[0][i]);
    const std::vector<double> got1 = Values(rank_stats[1][i]);
    for (size_t k = 0; k < want.size(); ++k) {
      EXPECT_NEAR(got0[k], want[k], c.tolerance) << "step " << i << " stat " << k;
      EXPECT_EQ(got0[k], got1[k]) << "step " << i << " stat " << k;  // identical on the ranks
      max_stat_diff = std::max(max_stat_diff, std::abs(got0[k] - want[k]));
    }
  }
  const double diff0 = MaxAbsDiff(**single, *ranks[0]);
  const double diff1 = MaxAbsDiff(**single, *ranks[1]);
  EXPECT_LE(diff0, c.tolerance);
  EXPECT_LE(diff1, c.tolerance);
  EXPECT_EQ(MaxAbsDiff(*ranks[0], *ranks[1]), 0.0);
  EXPECT_NEAR(ranks[0]->kl_coef(), (*single)->kl_coef(), c.tolerance);
  std::cout << c.name << ": max |single - rank0| " << diff0 << ", |single - rank1| " << diff1
            << ", max |stat diff| " << max_stat_diff << "\n";
}

INSTANTIATE_TEST_SUITE_P(Cases, PpoDataParallelTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return info.param.name;
                         });

// (3) Different inputs on one rank fail on every rank, and the group stays usable.
TEST(PpoDataParallelErrorsTest, RanksWithDifferentOrBadInputsAllFail) {
  torch::set_num_threads(1);
  const auto batches = Batches(Case{"", BaseOptions()});
  auto other = batches[0];
  other[3].set_response_tokens(0, other[3].response_tokens(0) == 5 ? 6 : 5);
  auto bad = batches[0];
  bad[1].set_response_tokens(0, 40);  // outside the vocabulary
  const auto models = ModelsForRanks(3);
  const int port = FreeLoopbackPort();
  RunRanks(kWorld, [&](int rank) {
    auto group = JoinGroup(port, rank);
    ASSERT_NE(group, nullptr);
    PpoTrainerOptions different = BaseOptions();
    if (rank == 1) different.minibatch_size = 4;
    auto refused = MakeTrainer(different, group.get(), models[rank][0]);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
    PpoTrainerOptions invalid = BaseOptions();
    if (rank == 1) invalid.epochs = 0;
    auto rejected = MakeTrainer(invalid, group.get(), models[rank][1]);
    EXPECT_EQ(rejected.status().code(), rank == 0 ? absl::StatusCode::kFailedPrecondition
                                                  : absl::StatusCode::kInvalidArgument)
        << rejected.status();

    auto trainer = MakeTrainer(BaseOptions(), group.get(), models[rank][2]);
    ASSERT_TRUE(trainer.ok()) << trainer.status();
    auto before = (*trainer)->PolicyParameters();
    auto differ = (*trainer)->Step(rank == 0 ? batches[0] : other);
    EXPECT_EQ(differ.status().code(), absl::StatusCode::kFailedPrecondition) << differ.status();
    EXPECT_NE(differ.status().message().find("PPO batch"), std::string::npos) << differ.status();
    auto invalid_batch = (*trainer)->Step(rank == 0 ? batches[0] : bad);
    EXPECT_EQ(invalid_batch.status().code(), rank == 0 ? absl::StatusCode::kFailedPrecondition
                                                       : absl::StatusCode::kInvalidArgument)
        << invalid_batch.status();
    EXPECT_EQ((*trainer)->step(), 0);
    auto after = (*trainer)->PolicyParameters();
    for (size_t i = 0; i < before.size(); ++i) {
      EXPECT_TRUE(torch::equal(before[i].second, after[i].second)) << before[i].first;
    }
    // Still in step: the same batch on both ranks trains.
    auto ok = (*trainer)->Step(batches[0]);
    EXPECT_TRUE(ok.ok()) << ok.status();
    EXPECT_TRUE(group->Barrier().ok());
  });
}

// Save is rank 0's; every rank restores and the ranks go on together.
TEST(PpoDataParallelErrorsTest, RankZeroSavesAndEveryRankRestores) {
  torch::set_num_threads(1);
  const auto batches = Batches(Case{"", BaseOptions()});
  const std::string dir =
      (std::filesystem::temp_directory_path() / "ppo_data_parallel_test_ckpt").string();
  std::filesystem::remove_all(dir);
  const auto models = ModelsForRanks(2);
  const int port = FreeLoopbackPort();
  RunRanks(kWorld, [&](int rank) {
    auto group = JoinGroup(port, rank);
    ASSERT_NE(group, nullptr);
    auto trainer = MakeTrainer(BaseOptions(), group.get(), models[rank][0]);
    ASSERT_TRUE(trainer.ok()) << trainer.status();
    ASSERT_TRUE((*trainer)->Step(batches[0]).ok());
    const absl::Status saved = (*trainer)->Save(dir);
    EXPECT_EQ(saved.code(),
              rank == 0 ? absl::StatusCode::kOk : absl::StatusCode::kFailedPrecondition)
        << saved;
    ASSERT_TRUE(group->Barrier().ok());
    auto restored = MakeTrainer(BaseOptions(), group.get(), models[rank][1]);
    ASSERT_TRUE(restored.ok()) << restored.status();
    const absl::Status s = (*restored)->Restore(dir);
    EXPECT_TRUE(s.ok()) << s;
    EXPECT_EQ((*restored)->step(), 1);
    const absl::Status missing = (*restored)->Restore(dir + (rank == 1 ? "/nowhere" : ""));
    EXPECT_EQ(missing.code(),
              rank == 1 ? absl::StatusCode::kNotFound : absl::StatusCode::kFailedPrecondition)
        << missing;
  });
  std::filesystem::remove_all(dir);
}

// (4) A group of one is the single process, bit for bit.
TEST(PpoDataParallelErrorsTest, GroupOfOneIsBitIdenticalToNoGroup) {
  torch::set_num_threads(1);
  for (const Case& c : Cases()) {
    const auto batches = Batches(c);
    auto group = dist::ProcessGroup::CreateSingle();
    auto plain = MakeTrainer(c.options, nullptr, MakeModels(3, c.float64));
    auto grouped = MakeTrainer(c.options, group.get(), MakeModels(3, c.float64));
    ASSERT_TRUE(plain.ok() && grouped.ok());
    for (const auto& batch : batches) {
      auto a = (*plain)->Step(batch);
      auto b = (*grouped)->Step(batch);
      ASSERT_TRUE(a.ok() && b.ok()) << c.name;
      EXPECT_EQ(Values(*a), Values(*b)) << c.name;
      EXPECT_EQ(b->allreduce_seconds, 0.0);
    }
    EXPECT_EQ(MaxAbsDiff(**plain, **grouped), 0.0) << c.name;
  }
}

}  // namespace
}  // namespace rlhf::learner
