#include "services/learner/ppo_trainer.h"

#include <cmath>
#include <filesystem>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "services/learner/ppo_test_util.h"

namespace rlhf::learner {
namespace {

using testing::SampleTrajectories;

model::Llama MakePolicy(uint64_t seed = 3) {
  auto policy = model::CreateRandomLlama(testing::TinyPolicyConfig(), seed);
  EXPECT_TRUE(policy.ok());
  return *policy;
}

std::unique_ptr<PpoTrainer> MakeTrainer(const PpoTrainerOptions& options, uint64_t seed = 3) {
  model::Llama policy = MakePolicy(seed);
  auto critic = PpoTrainer::CriticFromPolicy(policy);
  EXPECT_TRUE(critic.ok()) << critic.status();
  auto trainer = PpoTrainer::Create(policy, *critic, options);
  EXPECT_TRUE(trainer.ok()) << trainer.status();
  return std::move(*trainer);
}

PpoTrainerOptions Options() {
  PpoTrainerOptions o;
  o.minibatch_size = 4;
  o.epochs = 2;
  o.learning_rate = 3e-3;
  o.critic_learning_rate = 3e-3;
  o.kl.init_kl_coef = 0.01;
  return o;
}

double MaxParameterDifference(PpoTrainer& a, PpoTrainer& b) {
  auto pa = a.PolicyParameters();
  auto pb = b.PolicyParameters();
  double max = 0;
  for (size_t i = 0; i < pa.size(); ++i) {
    max = std::max(max, (pa[i].second - pb[i].second).abs().max().item<double>());
  }
  return max;
}

TEST(PpoTrainerTest, CriticStartsFromThePolicyTrunkWithZeroValues) {
  model::Llama policy = MakePolicy();
  auto critic = PpoTrainer::CriticFromPolicy(policy);
  ASSERT_TRUE(critic.ok());
  EXPECT_TRUE(torch::equal((*critic)->embed_tokens->weight, policy->embed_tokens->weight));
  torch::Tensor tokens = torch::tensor({{1, 5, 6, 7}}, torch::kLong);
  torch::NoGradGuard no_grad;
  EXPECT_EQ((*critic)->Values((*critic)->Trunk(tokens)).abs().max().item<double>(), 0.0);
}

TEST(PpoTrainerTest, StepReportsFiniteStatisticsAndMovesTheModels) {
  auto trainer = MakeTrainer(Options());
  auto before = trainer->PolicyParameters();
  auto batch = SampleTrajectories(trainer->policy(), 8, 8, /*seed=*/1, /*favoured_token=*/7);
  auto stats = trainer->Step(batch);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->step, 1);
  EXPECT_EQ(stats->trajectories, 8);
  EXPECT_GT(stats->tokens, 8);
  for (double v : {stats->policy_loss, stats->value_loss, stats->clipfrac, stats->approx_kl,
                   stats->entropy, stats->explained_variance, stats->kl_mean}) {
    EXPECT_TRUE(std::isfinite(v));
  }
  EXPECT_GT(stats->entropy, 0);
  EXPECT_EQ(stats->allreduce_seconds, 0.0);  // a single process
  EXPECT_TRUE(trainer->is_main());
  // Reference = behaviour, so the KL to the reference starts near 0.
  EXPECT_NEAR(stats->kl_mean, 0.0, 1e-3);
  EXPECT_EQ(trainer->step(), 1);
  auto after = trainer->PolicyParameters();
  double moved = 0;
  for (size_t i = 0; i < before.size(); ++i) {
    moved = std::max(moved, (after[i].second - before[i].second).abs().max().item<double>());
  }
  EXPECT_GT(moved, 0);
}

TEST(PpoTrainerTest, SameInputsGiveBitIdenticalParameters) {
  auto a = MakeTrainer(Options());
  auto b = MakeTrainer(Options());
  auto batch = SampleTrajectories(a->policy(), 8, 8, 1, 7);
  ASSERT_TRUE(a->Step(batch).ok());
  ASSERT_TRUE(b->Step(batch).ok());
  EXPECT_EQ(MaxParameterDifference(*a, *b), 0.0);
}

TEST(PpoTrainerTest, DecoupledLossOnOnPolicyTrajectoriesIsStandardPpo) {
  PpoTrainerOptions decoupled = Options();
  decoupled.decoupled = true;
  auto a = MakeTrainer(Options());
  auto b = MakeTrainer(decoupled);
  auto batch = SampleTrajectories(a->policy(), 8, 8, 1, 7);  // version 0 = the trainers'
  ASSERT_TRUE(a->Step(batch).ok());
  auto stats = b->Step(batch);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->stale_trajectories, 0);
  EXPECT_DOUBLE_EQ(stats->behaviour_weight_mean, 1.0);
  EXPECT_LE(MaxParameterDifference(*a, *b), 1e-6);
}

TEST(PpoTrainerTest, StaleTrajectoriesAreImportanceCorrected) {
  PpoTrainerOptions decoupled = Options();
  decoupled.decoupled = true;
  auto a = MakeTrainer(Options());
  auto b = MakeTrainer(decoupled);
  // Both trainers take one step to version 1; then a batch sampled from version 0 arrives.
  auto old_batch = SampleTrajectories(a->policy(), 8, 8, /*seed=*/2, 7);
  auto first = SampleTrajectories(a->policy(), 8, 8, /*seed=*/1, 7);
  ASSERT_TRUE(a->Step(first).ok());
  ASSERT_TRUE(b->Step(first).ok());
  ASSERT_EQ(MaxParameterDifference(*a, *b), 0.0);
  ASSERT_TRUE(a->Step(old_batch).ok());
  auto stats = b->Step(old_batch);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->stale_trajectories, 8);
  // The behaviour policy is one small step away: weights near, not at, 1.
  EXPECT_NE(stats->behaviour_weight_mean, 1.0);
  EXPECT_NEAR(stats->behaviour_weight_mean, 1.0, 0.2);
  EXPECT_GT(MaxParameterDifference(*a, *b), 0.0);
}

TEST(PpoTrainerTest, TokensAboveTheBehaviourWeightCapAreDropped) {
  PpoTrainerOptions o = Options();
  o.decoupled = true;
  o.behaviour_weight_cap = 5.0;
  auto trainer = MakeTrainer(o);
  auto batch = SampleTrajectories(trainer->policy(), 8, 8, 1, 7, "w", /*version=*/-1);
  // Behaviour log-probs far below the proximal ones: every weight is over the cap.
  for (auto& t : batch) {
    for (int j = 0; j < t.behaviour_logprobs_size(); ++j) t.set_behaviour_logprobs(j, -60.0f);
  }
  auto before = trainer->PolicyParameters();
  auto stats = trainer->Step(batch);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->stale_trajectories, 8);
  EXPECT_EQ(stats->behaviour_weight_mean, 0.0);
  // No policy gradient at all (the critic still learns): a fresh Adam leaves the policy as is.
  auto after = trainer->PolicyParameters();
  for (size_t i = 0; i < before.size(); ++i) {
    EXPECT_TRUE(torch::equal(before[i].second, after[i].second)) << before[i].first;
  }
}

TEST(PpoTrainerTest, BadDecoupledOptionsAreErrors) {
  PpoTrainerOptions o = Options();
  o.decoupled = true;
  o.behaviour_weight_cap = -1.0;
  EXPECT_FALSE(Validate(o).ok());
}

TEST(PpoTrainerTest, RewardOfTheFavouredTokenRises) {
  PpoTrainerOptions o = Options();
  o.learning_rate = 1e-2;
  auto trainer = MakeTrainer(o);
  const int64_t favoured = 7;
  const double initial =
      testing::MeanReward(SampleTrajectories(trainer->policy(), 64, 8, /*seed=*/1000, favoured));
  for (int step = 0; step < 15; ++step) {
    auto batch = SampleTrajectories(trainer->policy(), 16, 8, 10 + step, favoured);
    ASSERT_TRUE(trainer->Step(batch).ok());
  }
  const double final =
      testing::MeanReward(SampleTrajectories(trainer->policy(), 64, 8, /*seed=*/1000, favoured));
  // A random 40-token policy emits the token ~2.5% of the time; 15 steps at this learning rate
  // push it well past twice that (observed ~0.3).
  EXPECT_GT(final, initial * 2 + 0.05) << "initial " << initial << " final " << final;
}

TEST(PpoTrainerTest, SaveAndRestoreContinueTheSameRun) {
  const std::string dir =
      (std::filesystem::temp_directory_path() / "ppo_trainer_test_ckpt").string();
  std::filesystem::remove_all(dir);
  auto a = MakeTrainer(Options());
  auto first = SampleTrajectories(a->policy(), 8, 8, 1, 7);
  ASSERT_TRUE(a->Step(first).ok());
  ASSERT_TRUE(a->Save(dir).ok());

  auto b = MakeTrainer(Options(), /*seed=*/99);  // different weights until restored
  ASSERT_TRUE(b->Restore(dir).ok());
  EXPECT_EQ(b->step(), 1);
  EXPECT_EQ(b->kl_coef(), a->kl_coef());
  EXPECT_EQ(MaxParameterDifference(*a, *b), 0.0);

  auto second = SampleTrajectories(a->policy(), 8, 8, 2, 7);
  ASSERT_TRUE(a->Step(second).ok());
  ASSERT_TRUE(b->Step(second).ok());
  // Same Adam moments and the same shuffle RNG: the runs stay identical.
  EXPECT_EQ(MaxParameterDifference(*a, *b), 0.0);
  std::filesystem::remove_all(dir);
}

TEST(PpoTrainerTest, BadBatchesAreRejectedWithoutChangingTheModel) {
  auto trainer = MakeTrainer(Options());
  auto before = trainer->PolicyParameters();
  auto batch = SampleTrajectories(trainer->policy(), 4, 8, 1, 7);
  EXPECT_EQ(trainer->Step({}).status().code(), absl::StatusCode::kInvalidArgument);
  auto bad_id = batch;
  bad_id[1].set_response_tokens(0, 40);
  EXPECT_EQ(trainer->Step(bad_id).status().code(), absl::StatusCode::kInvalidArgument);
  auto bad_len = batch;
  bad_len[2].add_ref_logprobs(-1);
  EXPECT_EQ(trainer->Step(bad_len).status().code(), absl::StatusCode::kInvalidArgument);
  auto too_long = batch;
  for (int i = 0; i < 64; ++i) too_long[0].add_prompt_tokens(5);
  EXPECT_EQ(trainer->Step(too_long).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(trainer->step(), 0);
  auto after = trainer->PolicyParameters();
  for (size_t i = 0; i < before.size(); ++i) {
    EXPECT_TRUE(torch::equal(before[i].second, after[i].second));
  }
}

TEST(PpoTrainerTest, BadOptionsAreErrors) {
  PpoTrainerOptions o = Options();
  o.minibatch_size = 0;
  EXPECT_FALSE(Validate(o).ok());
  o = Options();
  o.temperature = 0;
  EXPECT_FALSE(Validate(o).ok());
  o = Options();
  o.grad_bucket_bytes = 0;
  EXPECT_FALSE(Validate(o).ok());
  model::Llama policy = MakePolicy();
  EXPECT_EQ(PpoTrainer::Create(policy, policy, Options()).status().code(),
            absl::StatusCode::kInvalidArgument);  // the policy is no critic
}

// ---- Critic-free advantages (RLOO, GRPO) ------------------------------------------------------

PpoTrainerOptions GroupOptions(rl::GroupBaseline baseline, int group_size) {
  PpoTrainerOptions o = Options();
  rl::GroupAdvantageOptions g;
  g.baseline = baseline;
  o.group_advantage = g;
  o.group_size = group_size;
  return o;
}

std::unique_ptr<PpoTrainer> MakeCriticFreeTrainer(const PpoTrainerOptions& options) {
  auto trainer = PpoTrainer::Create(MakePolicy(), model::Llama{nullptr}, options);
  EXPECT_TRUE(trainer.ok()) << trainer.status();
  return std::move(*trainer);
}

// `groups` groups of `k` consecutive samples of one prompt: copies of one sampled trajectory
// (identical responses, so identical KL), sample j of a group with reward base + j * spread.
std::vector<rlhf::v1::Trajectory> CopiedGroups(const model::Llama& policy, int groups, int k,
                                               float spread) {
  auto sampled = SampleTrajectories(policy, groups, 8, /*seed=*/5, /*favoured_token=*/7);
  std::vector<rlhf::v1::Trajectory> batch;
  for (int g = 0; g < groups; ++g) {
    for (int j = 0; j < k; ++j) {
      rlhf::v1::Trajectory t = sampled[g];
      t.set_id(absl::StrCat(sampled[g].id(), "#", j));
      t.set_reward(sampled[g].reward() + spread * static_cast<float>(j));
      batch.push_back(std::move(t));
    }
  }
  return batch;
}

TEST(PpoTrainerCriticFreeTest, EqualRewardsInEveryGroupGiveZeroAdvantages) {
  for (rl::GroupBaseline baseline :
       {rl::GroupBaseline::kLeaveOneOut, rl::GroupBaseline::kMeanStd}) {
    auto trainer = MakeCriticFreeTrainer(GroupOptions(baseline, 2));
    EXPECT_TRUE(trainer->critic().is_empty());
    // GAE with the (zero-valued) critic would give every token the score: here all cancel.
    auto stats = trainer->Step(CopiedGroups(trainer->policy(), 4, 2, /*spread=*/0));
    ASSERT_TRUE(stats.ok()) << stats.status();
    EXPECT_NEAR(stats->policy_loss, 0.0, 1e-6);
    EXPECT_EQ(stats->value_loss, 0.0);
    EXPECT_EQ(stats->explained_variance, 0.0);
    EXPECT_NEAR(stats->kl_mean, 0.0, 1e-3);
  }
}

TEST(PpoTrainerCriticFreeTest, RlooStepReportsTheWholeBatch) {
  auto trainer = MakeCriticFreeTrainer(GroupOptions(rl::GroupBaseline::kLeaveOneOut, 2));
  auto batch = CopiedGroups(trainer->policy(), 4, 2, /*spread=*/1);
  auto stats = trainer->Step(batch);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->step, 1);
  EXPECT_EQ(stats->trajectories, 8);
  EXPECT_TRUE(std::isfinite(stats->policy_loss));
  EXPECT_TRUE(std::isfinite(stats->entropy));
  EXPECT_NEAR(stats->score_mean, testing::MeanReward(batch), 1e-6);
}

TEST(PpoTrainerCriticFreeTest, BatchesThatAreNotWholeGroupsAreRejected) {
  auto trainer = MakeCriticFreeTrainer(GroupOptions(rl::GroupBaseline::kLeaveOneOut, 4));
  auto before = trainer->PolicyParameters();
  auto batch = CopiedGroups(trainer->policy(), 2, 4, /*spread=*/0.5f);
  auto partial = batch;
  partial.resize(6);
  absl::Status s = trainer->Step(partial).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("not whole groups of 4"), std::string::npos) << s;
  auto mixed = batch;
  std::swap(mixed[3], mixed[4]);  // each group now holds a sample of the other's prompt
  s = trainer->Step(mixed).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("not one group of 4"), std::string::npos) << s;
  EXPECT_EQ(trainer->step(), 0);
  auto after = trainer->PolicyParameters();
  for (size_t i = 0; i < before.size(); ++i) {
    EXPECT_TRUE(torch::equal(before[i].second, after[i].second));
  }
  EXPECT_TRUE(trainer->Step(batch).ok());
}

TEST(PpoTrainerCriticFreeTest, SavesAndRestoresWithoutACritic) {
  const PpoTrainerOptions o = GroupOptions(rl::GroupBaseline::kMeanStd, 2);
  auto a = MakeCriticFreeTrainer(o);
  ASSERT_TRUE(a->Step(CopiedGroups(a->policy(), 2, 2, 1)).ok());
  const std::string dir = ::testing::TempDir() + "/critic_free_ckpt";
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(a->Save(dir).ok());
  EXPECT_FALSE(std::filesystem::exists(dir + "/critic"));
  auto b = MakeCriticFreeTrainer(o);
  ASSERT_TRUE(b->Restore(dir).ok());
  EXPECT_EQ(b->step(), 1);
  EXPECT_EQ(MaxParameterDifference(*a, *b), 0.0);
  std::filesystem::remove_all(dir);
}

TEST(PpoTrainerCriticFreeTest, OptionsAndModelsMustAgree) {
  PpoTrainerOptions o = GroupOptions(rl::GroupBaseline::kLeaveOneOut, 1);
  EXPECT_EQ(Validate(o).code(), absl::StatusCode::kInvalidArgument);  // a group of 1
  o = Options();
  o.group_size = 4;
  EXPECT_EQ(Validate(o).code(), absl::StatusCode::kInvalidArgument);  // groups without RLOO/GRPO
  model::Llama policy = MakePolicy();
  auto critic = PpoTrainer::CriticFromPolicy(policy);
  ASSERT_TRUE(critic.ok());
  EXPECT_EQ(PpoTrainer::Create(policy, *critic, GroupOptions(rl::GroupBaseline::kMeanStd, 2))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);  // a critic it would not train
  EXPECT_EQ(PpoTrainer::Create(MakePolicy(), model::Llama{nullptr}, Options()).status().code(),
            absl::StatusCode::kInvalidArgument);  // GAE needs one
}

TEST(PpoTrainerCriticFreeTest, OptionsFromConfig) {
  rlhf::v1::PpoConfig ppo;
  ppo.set_advantage(rlhf::v1::PpoConfig::GRPO);
  ppo.set_group_size(4);
  PpoTrainerOptions o = PpoTrainerOptionsFromConfig(ppo, rlhf::v1::SamplingConfig());
  ASSERT_TRUE(o.group_advantage.has_value());
  EXPECT_EQ(o.group_advantage->baseline, rl::GroupBaseline::kMeanStd);
  EXPECT_EQ(o.group_size, 4);
  ppo.set_advantage(rlhf::v1::PpoConfig::RLOO);
  o = PpoTrainerOptionsFromConfig(ppo, rlhf::v1::SamplingConfig());
  EXPECT_EQ(o.group_advantage->baseline, rl::GroupBaseline::kLeaveOneOut);
  EXPECT_FALSE(PpoTrainerOptionsFromConfig(rlhf::v1::PpoConfig(), rlhf::v1::SamplingConfig())
                   .group_advantage.has_value());
}

}  // namespace
}  // namespace rlhf::learner
