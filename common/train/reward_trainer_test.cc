#include "common/train/reward_trainer.h"

#include <filesystem>
#include <random>

#include "common/testing/shared_data.h"
#include "common/testing/tiny_llama.h"
#include "common/train/reward_data.h"
#include "common/train/train_test_util.h"
#include "gtest/gtest.h"

namespace rlhf::train {
namespace {

using testing::SyntheticPairs;
using testing::TinyRewardConfig;

double Accuracy(model::Llama& model, const std::vector<TokenizedPair>& pairs) {
  std::vector<std::vector<int64_t>> chosen, rejected;
  for (const auto& p : pairs) {
    chosen.push_back(p.chosen);
    rejected.push_back(p.rejected);
  }
  auto rc = ScoreSequences(model, chosen);
  auto rr = ScoreSequences(model, rejected);
  EXPECT_TRUE(rc.ok() && rr.ok());
  int correct = 0;
  for (size_t i = 0; i < pairs.size(); ++i) correct += (*rc)[i] > (*rr)[i];
  return static_cast<double>(correct) / static_cast<double>(pairs.size());
}

RewardTrainerOptions Options(int64_t steps) {
  RewardTrainerOptions o;
  o.optim.learning_rate = 3e-3;
  o.optim.warmup_steps = 5;
  o.optim.total_steps = steps;
  o.batch_pairs = 16;
  o.micro_batch_pairs = 8;
  return o;
}

TEST(RewardTrainerTest, LearnsThePreferenceEndToEnd) {
  auto model = model::CreateRandomLlama(TinyRewardConfig(), 3);
  ASSERT_TRUE(model.ok());
  const auto pairs = SyntheticPairs(64, 1);
  const double before = Accuracy(*model, pairs);
  auto trainer = RewardTrainer::Create(*model, pairs, Options(60));
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  double first_loss = 0, last_loss = 0;
  for (int i = 0; i < 60; ++i) {
    auto stats = (*trainer)->Step();
    ASSERT_TRUE(stats.ok()) << stats.status();
    if (i == 0) first_loss = stats->loss;
    last_loss = stats->loss;
  }
  const double after = Accuracy((*trainer)->model(), pairs);
  EXPECT_GT(after, 0.9) << "before training: " << before;
  EXPECT_LT(last_loss, first_loss);
  EXPECT_DOUBLE_EQ((*trainer)->epoch(), 60.0 * 16 / 64);
}

TEST(RewardTrainerTest, AResumedRunEndsAtTheSameParameters) {
  const auto pairs = SyntheticPairs(24, 2);  // batches straddle epochs
  auto straight_model = model::CreateRandomLlama(TinyRewardConfig(), 5);
  auto straight = RewardTrainer::Create(*straight_model, pairs, Options(8));
  ASSERT_TRUE(straight.ok());
  for (int i = 0; i < 8; ++i) ASSERT_TRUE((*straight)->Step().ok());

  const std::string dir = ::testing::TempDir() + "/rm_resume";
  std::filesystem::remove_all(dir);
  {
    auto model = model::CreateRandomLlama(TinyRewardConfig(), 5);
    auto first = RewardTrainer::Create(*model, pairs, Options(8));
    for (int i = 0; i < 3; ++i) ASSERT_TRUE((*first)->Step().ok());
    ASSERT_TRUE((*first)->Save(dir).ok());
  }
  auto other = model::CreateRandomLlama(TinyRewardConfig(), 99);  // overwritten by Restore
  auto resumed = RewardTrainer::Create(*other, pairs, Options(8));
  ASSERT_TRUE((*resumed)->Restore(dir).ok());
  EXPECT_EQ((*resumed)->step(), 3);
  for (int i = 3; i < 8; ++i) ASSERT_TRUE((*resumed)->Step().ok());

  auto a = (*straight)->model()->named_parameters();
  auto b = (*resumed)->model()->named_parameters();
  ASSERT_EQ(a.size(), b.size());
  for (const auto& p : a) {
    EXPECT_LE((p.value() - b[p.key()]).abs().max().item<double>(), 1e-6) << p.key();
  }

  // Other data: refused with the reason.
  auto fewer = RewardTrainer::Create(*other, SyntheticPairs(10, 2), Options(8));
  EXPECT_EQ((*fewer)->Restore(dir).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(RewardTrainerTest, ScheduleWarmsUpThenDecays) {
  OptimOptions o = Options(105).optim;
  o.learning_rate = 1.0;
  o.min_lr_ratio = 0.1;
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(o, 0), 0.2);
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(o, 4), 1.0);
  EXPECT_DOUBLE_EQ(ScheduledLearningRate(o, 5), 1.0);
  EXPECT_NEAR(ScheduledLearningRate(o, 55), 0.55, 1e-12);
  EXPECT_NEAR(ScheduledLearningRate(o, 105), 0.1, 1e-12);
}

TEST(RewardTrainerTest, BadInputIsRefused) {
  auto model = model::CreateRandomLlama(TinyRewardConfig(), 3);
  RewardTrainerOptions o = Options(10);
  o.micro_batch_pairs = 5;  // does not divide 16
  EXPECT_EQ(RewardTrainer::Create(*model, SyntheticPairs(4, 1), o).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(RewardTrainer::Create(*model, {}, Options(10)).ok());
  auto pairs = SyntheticPairs(4, 1);
  pairs[2].rejected.push_back(40);  // outside the vocabulary
  EXPECT_FALSE(RewardTrainer::Create(*model, pairs, Options(10)).ok());
  model::LlamaConfig lm = TinyRewardConfig();
  lm.scalar_head = false;
  lm.lm_head = true;
  auto policy = model::CreateRandomLlama(lm, 3);
  EXPECT_FALSE(RewardTrainer::Create(*policy, SyntheticPairs(4, 1), Options(10)).ok());
}

TEST(RewardDataTest, TooLongPairsAreSkippedWithTheirLineOrStopTheJob) {
  auto tok = tokenizer::LoadTokenizer(::rlhf::testing::SharedPath("models/tok512.model"));
  if (!tok.ok()) GTEST_SKIP() << tok.status();
  std::vector<data::PreferencePair> pairs(3);
  for (int i = 0; i < 3; ++i) {
    pairs[i].prompt = "Once upon a time";
    pairs[i].chosen = "there was a dog.";
    pairs[i].rejected = "there was a cat.";
    pairs[i].line = i + 1;
  }
  pairs[1].rejected = std::string(400, 'x') + " long";
  data::ReadReport report;
  std::vector<int64_t> lines;
  auto kept = TokenizePairs(pairs, **tok, 64, "f.jsonl", {}, &report, &lines);
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(kept->size(), 2u);
  EXPECT_EQ(lines, (std::vector<int64_t>{1, 3}));
  ASSERT_EQ(report.skipped, 1);
  EXPECT_NE(report.problems[0].find("f.jsonl:2:"), std::string::npos) << report.problems[0];
  data::ReadOptions strict;
  strict.strict = true;
  data::ReadReport r2;
  EXPECT_EQ(TokenizePairs(pairs, **tok, 64, "f.jsonl", strict, &r2).status().code(),
            absl::StatusCode::kInvalidArgument);
  // The sequence is what the reward service scores: BOS, prompt, response.
  EXPECT_EQ((*kept)[0].chosen.front(), (*tok)->bos_id());
}

TEST(RewardDataTest, LengthBaselinesAndExclusion) {
  std::vector<data::PreferencePair> pairs(4);
  pairs[0].chosen = "long answer";
  pairs[0].rejected = "short";
  pairs[1].chosen = "long answer";
  pairs[1].rejected = "short";
  pairs[2].chosen = "tiny";
  pairs[2].rejected = "much longer";
  pairs[3].chosen = "same";
  pairs[3].rejected = "SAME";
  const LengthBaselines b = ComputeLengthBaselines(pairs);
  EXPECT_DOUBLE_EQ(b.longer_wins, 2.5 / 4);
  EXPECT_DOUBLE_EQ(b.shorter_wins, 1.5 / 4);
  std::vector<data::PreferencePair> exclude = {pairs[0]};
  EXPECT_EQ(ExcludePairs(exclude, &pairs), 2);
  EXPECT_EQ(pairs.size(), 2u);
}

}  // namespace
}  // namespace rlhf::train
