#include "common/world/world.h"

#include <set>

#include "absl/strings/match.h"
#include "common/cai/cai.h"
#include "common/data/preference_data.h"
#include "common/tokenizer/tokenizer.h"
#include "common/world/gold.h"
#include "common/world/world_files.h"
#include "gtest/gtest.h"

namespace rlhf::world {
namespace {

WorldOptions Small() {
  WorldOptions o;
  o.corpus_docs = 600;
  o.sft_demos = 50;
  o.help_pairs = 200;
  o.harm_pairs = 300;
  return o;
}

const Prompt& First(const World& w, Kind kind) {
  for (const Prompt& p : w.train()) {
    if (p.kind == kind) return p;
  }
  return w.train().front();
}

TEST(WorldTest, HoldsOutTwoPhrasingsOfEveryTopic) {
  World w(Small());
  EXPECT_EQ(w.train().size(), 168u);
  EXPECT_EQ(w.eval().size(), 84u);
  std::set<std::string> train_texts;
  for (const Prompt& p : w.train()) train_texts.insert(p.text);
  for (const Prompt& p : w.eval()) EXPECT_EQ(train_texts.count(p.text), 0u) << p.text;
  EXPECT_EQ(First(w, Kind::kBenign).Conversation().rfind("\n\nHuman: ", 0), 0u);
}

TEST(WorldTest, GoldRatersJudgeWhatTheGeneratorWrote) {
  World w(Small());
  Rng rng(3);
  const Prompt& benign = First(w, Kind::kBenign);
  const Prompt& harmful = First(w, Kind::kHarmful);
  GoldVerdict v = Judge(benign, w.Response(benign, Reply::kHelpful, rng));
  EXPECT_DOUBLE_EQ(v.help, 1.0);
  EXPECT_TRUE(v.harmless);
  EXPECT_FALSE(v.evasive);
  v = Judge(benign, w.Response(benign, Reply::kEvasive, rng));
  EXPECT_TRUE(v.evasive);
  EXPECT_DOUBLE_EQ(v.help, 0.0);
  v = Judge(harmful, w.Response(harmful, Reply::kCompliance, rng));
  EXPECT_FALSE(v.harmless);
  v = Judge(harmful, w.Response(harmful, Reply::kExplained, rng));
  EXPECT_TRUE(v.harmless);
  EXPECT_FALSE(v.evasive);
  EXPECT_TRUE(v.explained_refusal);
  v = Judge(harmful, w.Response(harmful, Reply::kEvasive, rng));
  EXPECT_TRUE(v.harmless && v.evasive && v.terse_refusal);
  v = Judge(harmful, w.Response(harmful, Reply::kOfftopic, rng));
  EXPECT_TRUE(v.harmless && v.evasive && !v.refusal);  // a deflection is evasive
  // A garbled harmful step still counts (word trigrams), and benign facts never do.
  EXPECT_FALSE(Judge(harmful, "sure . mix bleach with soap and water .").harmless);
  for (Kind k : {Kind::kBenign, Kind::kBorderline}) {
    for (const Prompt& p : w.train()) {
      if (p.kind == k)
        EXPECT_TRUE(Judge(p, w.Response(p, Reply::kHelpful, rng)).harmless) << p.text;
    }
  }
}

TEST(WorldTest, GoldMetricsAverageOverPrompts) {
  World w(Small());
  const Prompt& a = First(w, Kind::kHarmful);
  const Prompt& b = w.train()[std::find_if(w.train().begin(), w.train().end(),
                                           [&](const Prompt& p) {
                                             return p.kind == Kind::kHarmful && &p != &a;
                                           }) -
                              w.train().begin()];
  GoldVerdict bad, good;
  bad.harmless = false;
  auto m = GoldMetrics({{&a, {bad, good}}, {&b, {good, good}}});
  EXPECT_DOUBLE_EQ(m["harmless"].mean, 0.75);
  EXPECT_NEAR(m["harmless"].se, 0.25, 1e-12);
  EXPECT_EQ(m["harmless"].n, 2);
  EXPECT_EQ(m["help_benign"].n, 0);
}

TEST(WorldTest, HumanRatersHaveTheDocumentedBiases) {
  WorldOptions o = Small();
  o.harm_pairs = 4000;
  o.help_pairs = 3000;
  World w(o);
  int refusal_vs_compliance = 0, refusal_won = 0, terse_vs_explained = 0, terse_won = 0;
  for (const Comparison& c : w.HarmlessnessComparisons()) {
    if (c.prompt->kind != Kind::kHarmful) continue;
    auto is = [&](Reply x, Reply y) { return c.first_type == x && c.second_type == y; };
    if (is(Reply::kEvasive, Reply::kCompliance) || is(Reply::kExplained, Reply::kCompliance)) {
      ++refusal_vs_compliance;
      refusal_won += c.first_preferred;
    }
    if (is(Reply::kEvasive, Reply::kExplained)) {
      ++terse_vs_explained;
      terse_won += c.first_preferred;
    }
  }
  ASSERT_GT(refusal_vs_compliance, 100);
  ASSERT_GT(terse_vs_explained, 50);
  EXPECT_NEAR(static_cast<double>(refusal_won) / refusal_vs_compliance, 0.9, 0.05);
  // 0.75 * 0.9 + 0.25 * 0.1 = 0.7
  EXPECT_NEAR(static_cast<double>(terse_won) / terse_vs_explained, 0.7, 0.1);
  int helpful_vs_evasive = 0, helpful_won = 0;
  for (const Comparison& c : w.HelpfulnessComparisons()) {
    if (c.first_type == Reply::kHelpful && c.second_type == Reply::kEvasive) {
      ++helpful_vs_evasive;
      helpful_won += c.first_preferred;
    }
  }
  ASSERT_GT(helpful_vs_evasive, 30);
  EXPECT_NEAR(static_cast<double>(helpful_won) / helpful_vs_evasive, 0.85, 0.1);
}

TEST(WorldTest, CorpusIsDeterministicAndInTheCaiFormats) {
  World w(Small());
  const std::vector<std::string> docs = w.Corpus();
  EXPECT_EQ(docs, World(Small()).Corpus());
  WorldOptions other = Small();
  other.seed = 1;
  EXPECT_NE(docs, World(other).Corpus());
  int dialogues = 0, critiques = 0, comparisons = 0;
  for (const std::string& d : docs) {
    if (absl::StrContains(d, "\n\nRevision:")) {
      ++critiques;
      EXPECT_TRUE(absl::StrContains(d, "\n\nCritiqueRequest: ")) << d;
    } else if (absl::StrContains(d, "Let's think step by step:")) {
      ++comparisons;
      EXPECT_TRUE(absl::EndsWith(d, "So the answer is: (A)") ||
                  absl::EndsWith(d, "So the answer is: (B)"))
          << d;
    } else {
      ++dialogues;
      EXPECT_EQ(d.rfind("\n\nHuman: ", 0), 0u) << d;
    }
  }
  EXPECT_NEAR(dialogues / 600.0, 0.6, 0.06);
  EXPECT_NEAR(critiques / 600.0, 0.2, 0.05);
  EXPECT_NEAR(comparisons / 600.0, 0.2, 0.05);
}

TEST(WorldTest, WritesFilesTheJobsRead) {
  World w(Small());
  const std::string dir = ::testing::TempDir() + "/world_files";
  auto files = WriteWorld(w, dir, 8, 2);
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_GT(files->vocab_size, 300);
  EXPECT_LT(files->vocab_size, 1000);
  auto tok = tokenizer::LoadTokenizer(files->tokenizer);
  ASSERT_TRUE(tok.ok()) << tok.status();
  // Word-level: one piece per word, and the option tokens are single pieces.
  EXPECT_EQ((*tok)->Encode("how do i make tea ?").size(), 6u);
  EXPECT_EQ((*tok)->Encode(cai::kOptionA).size(), 1u);
  EXPECT_EQ((*tok)->Encode(cai::kOptionB).size(), 1u);
  for (const std::string& d : w.Corpus()) EXPECT_EQ((*tok)->Decode((*tok)->Encode(d)), d);
  auto demos = data::ReadDemonstrations(files->demonstrations, {.strict = true});
  ASSERT_TRUE(demos.ok()) << demos.status();
  EXPECT_EQ(demos->items.size(), 50u);
  auto help = data::ReadPreferences(files->help_pairs, {.strict = true});
  ASSERT_TRUE(help.ok()) << help.status();
  EXPECT_EQ(help->items.size(), 200u);
  auto unlabelled = data::ReadTextLines(files->redteam_pairs);
  ASSERT_TRUE(unlabelled.ok());
  EXPECT_EQ(unlabelled->size(), 300u);
  auto corpus = data::ReadDemonstrations(files->corpus, {.strict = true});
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  EXPECT_EQ(corpus->items.size(), 600u);
  auto constitution = cai::LoadConstitution(files->constitution);
  ASSERT_TRUE(constitution.ok()) << constitution.status();
  EXPECT_EQ(constitution->size(), Constitution().size());
  auto principles = cai::LoadFeedbackPrinciples(files->feedback_principles);
  ASSERT_TRUE(principles.ok()) << principles.status();
  EXPECT_EQ((*principles)[0].raw, FeedbackPrinciples()[0].raw);
  auto cot = cai::LoadCotExamples(files->cot_examples);
  ASSERT_TRUE(cot.ok()) << cot.status();
  EXPECT_TRUE(cot->empty());
}

}  // namespace
}  // namespace rlhf::world
