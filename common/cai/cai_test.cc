// Tests of the CAI prompts (the soft-label math is common/rl's, with its goldens in
// rl_preference_test): the prompts rebuilt exactly from the upstream files in ../shared/data/cai
// (every few-shot critique/revision example) and ../shared/data/eval (all 438 HHH multiple-choice
// prompts); bad files refused with the entry named.
#include "common/cai/cai.h"

#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/testing/shared_data.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rlhf::cai {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

// "\n\nHuman: ...\n\nAssistant: <response>" -> (conversation up to the last "\n\nAssistant:",
// response).
std::pair<std::string, std::string> Split(const std::string& text) {
  const size_t at = text.rfind("\n\nAssistant:");
  const size_t len = std::string("\n\nAssistant:").size();
  std::string response = text.substr(at + len);
  if (!response.empty() && response[0] == ' ') response.erase(0, 1);
  return {text.substr(0, at + len), response};
}

TEST(CaiPromptsTest, AllHhhEvaluationPromptsAreRebuiltExactly) {
  auto principles =
      LoadFeedbackPrinciples(testing::SharedPath("data/cai/feedback_principles.json"));
  ASSERT_TRUE(principles.ok()) << principles.status();
  ASSERT_EQ(principles->size(), 16u);
  const FeedbackPrinciple& feedback1 = (*principles)[1];
  std::ifstream in(testing::SharedPath("data/eval/438HHHEvaluations.jsonl"));
  int n = 0;
  for (std::string line; std::getline(in, line); ++n) {
    const json r = json::parse(line);
    auto [conversation, correct] = Split(r["text_correct"]);
    auto [other_conversation, incorrect] = Split(r["text_incorrect"]);
    ASSERT_EQ(conversation, other_conversation);
    const bool a_correct = r["corrects"][0] == kOptionA;
    EXPECT_EQ(r[a_correct ? "incorrects" : "corrects"][0], kOptionB);
    const std::string prompt = FeedbackPrompt("", conversation, a_correct ? correct : incorrect,
                                              a_correct ? incorrect : correct, feedback1);
    ASSERT_EQ(prompt, r["prompt"].get<std::string>()) << "record " << n;
  }
  EXPECT_EQ(n, 438);
}

TEST(CaiPromptsTest, TheFewShotCritiqueRevisionExamplesAreRebuiltExactly) {
  const std::string path =
      testing::SharedPath("data/cai/prompts/CritiqueRevisionFewShotPrompts.json");
  std::ifstream in(path);
  const json examples = json::parse(in);
  ASSERT_EQ(examples.size(), 5u);
  std::string expected_prefix;
  for (const json& e : examples) {
    std::string text = e.get<std::string>();
    if (text.size() >= 8 && text.compare(text.size() - 8, 8, "\n\nHuman:") == 0) {
      text.resize(text.size() - 8);
    }
    expected_prefix += text;
    // <conversation> <response>\n\nCritiqueRequest: <c>\n\nCritique: <critique>
    // \n\nRevisionRequest: <r>\n\nRevision: <revision>
    const size_t cr = text.find("\n\nCritiqueRequest: ");
    const size_t cq = text.find("\n\nCritique: ");
    const size_t rr = text.find("\n\nRevisionRequest: ");
    const size_t rv = text.find("\n\nRevision: ");
    ASSERT_TRUE(cr != std::string::npos && cq > cr && rr > cq && rv > rr) << text;
    auto [conversation, response] = Split(text.substr(0, cr));
    Principle p;
    p.critique_request = text.substr(cr + 19, cq - cr - 19);
    p.revision_request = text.substr(rr + 19, rv - rr - 19);
    const std::string critique = text.substr(cq + 12, rr - cq - 12);
    const std::string revision = text.substr(rv + 12);
    const std::string critique_prompt = CritiquePrompt("", conversation, response, p);
    EXPECT_EQ(absl::StrCat(RevisionPrompt(critique_prompt, critique, p), " ", revision), text);
  }
  auto prefix = LoadFewShotPrefix(path);
  ASSERT_TRUE(prefix.ok()) << prefix.status();
  EXPECT_EQ(*prefix, expected_prefix);
  EXPECT_EQ(prefix->find("\n\nHuman:\n\nHuman:"), std::string::npos);
  // The constitution's 16 principles (their *_raw strings checked on load) and the chain-of-
  // thought examples (one "{}" each).
  auto constitution = LoadConstitution(testing::SharedPath("data/cai/constitution.json"));
  ASSERT_TRUE(constitution.ok()) << constitution.status();
  EXPECT_EQ(constitution->size(), 16u);
  auto cot =
      LoadCotExamples(testing::SharedPath("data/cai/prompts/RLMadisonPrecogFewShotPrompts.json"));
  ASSERT_TRUE(cot.ok()) << cot.status();
  EXPECT_EQ(cot->size(), 6u);
}

TEST(CaiPromptsTest, PromptShapes) {
  EXPECT_EQ(Conversation("Hi?"), "\n\nHuman: Hi?\n\nAssistant:");
  EXPECT_EQ(Conversation("\n\nHuman: Hi?"), "\n\nHuman: Hi?\n\nAssistant:");
  EXPECT_EQ(Conversation("\n\nHuman: Hi?\n\nAssistant:"), "\n\nHuman: Hi?\n\nAssistant:");
  Principle p{"p", "Find harm.", "Remove harm."};
  const std::string c = CritiquePrompt("FEW", Conversation("Hi?"), "Go away.", p);
  EXPECT_EQ(c,
            "FEW\n\nHuman: Hi?\n\nAssistant: Go away.\n\nCritiqueRequest: Find harm.\n\nCritique:");
  EXPECT_EQ(RevisionPrompt(c, "Rude.", p),
            c + " Rude.\n\nRevisionRequest: Remove harm.\n\nRevision:");
  FeedbackPrinciple f{"f", "Which is kind?", "\nWhich is kind? Options:"};
  const std::string cot = CotFeedbackPrompt({"EX {} END"}, Conversation("Hi?"), "a", "b", f);
  EXPECT_EQ(cot,
            "EX \nWhich is kind? Options: END\n\nConsider the following conversation between a "
            "human and an assistant:\n\nHuman: Hi?\n\n\nWhich is kind? Options:\n (A) [[[a]]]\n "
            "(B) [[[b]]]\n\nAssistant: Let's think step by step:");
  EXPECT_EQ(CotAnswerPrompt("P", "because"), "P\nbecause\n\nHuman:\nSo the answer is:");
  EXPECT_EQ(FirstTurn("  Sure thing.\n\nHuman: and then"), "Sure thing.");
  EXPECT_EQ(FirstTurn("It is rude.\n\nRevisionRequest: x"), "It is rude.");
}

TEST(CaiPromptsTest, BadFilesAreRefusedWithTheEntryNamed) {
  const std::string dir = ::testing::TempDir();
  const std::string path = absl::StrCat(dir, "/cai_bad_", getpid(), ".json");
  std::ofstream(path) << R"([{"name": "x", "critique_request": "c"}])";
  auto missing = LoadConstitution(path);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("entry 0: 'revision_request'"));
  std::ofstream(path, std::ios::trunc)
      << R"([{"name": "x", "critique_request": "c", "revision_request": "r", "critique_prompt_raw": "c"}])";
  EXPECT_THAT(std::string(LoadConstitution(path).status().message()),
              HasSubstr("critique_prompt_raw"));
  std::ofstream(path, std::ios::trunc) << R"([{"name": "f", "question": "q", "raw": "q"}])";
  EXPECT_THAT(std::string(LoadFeedbackPrinciples(path).status().message()), HasSubstr("raw"));
  std::ofstream(path, std::ios::trunc) << R"([{"prompt": "no placeholder"}])";
  EXPECT_FALSE(LoadCotExamples(path).ok());
  std::ofstream(path, std::ios::trunc) << "not json";
  EXPECT_FALSE(LoadFewShotPrefix(path).ok());
  EXPECT_EQ(LoadConstitution("/nonexistent.json").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace rlhf::cai
