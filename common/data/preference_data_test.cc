#include "common/data/preference_data.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace rlhf::data {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;
using ::testing::StartsWith;

// A unique path in the test temp dir, named after the running test.
std::string TempPath(const std::string& suffix) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return absl::StrCat(::testing::TempDir(), "/preference_data_test_", info->test_suite_name(), "_",
                      info->name(), suffix);
}

std::string WriteFile(const std::string& content, const std::string& suffix = ".jsonl") {
  const std::string path = TempPath(suffix);
  std::ofstream out(path, std::ios::binary);
  out << content;
  EXPECT_TRUE(out.good()) << path;
  return path;
}

std::string WriteGzFile(const std::string& content) {
  const std::string path = TempPath(".jsonl.gz");
  gzFile file = gzopen(path.c_str(), "wb");
  EXPECT_NE(file, nullptr) << path;
  EXPECT_EQ(gzwrite(file, content.data(), content.size()), static_cast<int>(content.size()));
  EXPECT_EQ(gzclose(file), Z_OK);
  return path;
}

std::vector<std::pair<Turn::Role, std::string>> Flatten(const std::vector<Turn>& turns) {
  std::vector<std::pair<Turn::Role, std::string>> out;
  for (const Turn& turn : turns) out.emplace_back(turn.role, turn.text);
  return out;
}

std::vector<std::pair<std::string, bool>> Flatten(const std::vector<Segment>& segments) {
  std::vector<std::pair<std::string, bool>> out;
  for (const Segment& segment : segments) out.emplace_back(segment.text, segment.train);
  return out;
}

// ---- ParseHhConversation / SplitHhConversation --------------------------------------------------

TEST(ParseHhConversationTest, MultiTurn) {
  auto turns =
      ParseHhConversation("\n\nHuman: hi\n\nAssistant: hello\n\nHuman: bye\n\nAssistant: ok");
  ASSERT_TRUE(turns.ok()) << turns.status();
  EXPECT_THAT(Flatten(*turns),
              ElementsAre(std::pair(Turn::kHuman, "hi"), std::pair(Turn::kAssistant, "hello"),
                          std::pair(Turn::kHuman, "bye"), std::pair(Turn::kAssistant, "ok")));
}

TEST(ParseHhConversationTest, StripsOnlyOneSpaceAndKeepsInnerNewlines) {
  auto turns = ParseHhConversation("\n\nHuman:  two\nlines\n\nAssistant:x");
  ASSERT_TRUE(turns.ok()) << turns.status();
  EXPECT_THAT(Flatten(*turns), ElementsAre(std::pair(Turn::kHuman, " two\nlines"),
                                           std::pair(Turn::kAssistant, "x")));
}

TEST(ParseHhConversationTest, MarkerWithoutBlankLineStaysInsideTurn) {
  auto turns = ParseHhConversation(
      "\n\nHuman: hey\n\nAssistant: I am fine.  Human: So what do you like?\n\nHuman: ok");
  ASSERT_TRUE(turns.ok()) << turns.status();
  EXPECT_THAT(Flatten(*turns),
              ElementsAre(std::pair(Turn::kHuman, "hey"),
                          std::pair(Turn::kAssistant, "I am fine.  Human: So what do you like?"),
                          std::pair(Turn::kHuman, "ok")));
}

TEST(ParseHhConversationTest, ConsecutiveSameRoleTurnsStaySeparate) {
  auto turns = ParseHhConversation("\n\nHuman: a\n\nHuman: b\n\nAssistant: c\n\nAssistant: d");
  ASSERT_TRUE(turns.ok()) << turns.status();
  EXPECT_THAT(Flatten(*turns),
              ElementsAre(std::pair(Turn::kHuman, "a"), std::pair(Turn::kHuman, "b"),
                          std::pair(Turn::kAssistant, "c"), std::pair(Turn::kAssistant, "d")));
}

TEST(ParseHhConversationTest, EmptyFinalAssistantTurn) {
  for (const char* text : {"\n\nHuman: q\n\nAssistant: ", "\n\nHuman: q\n\nAssistant:"}) {
    auto turns = ParseHhConversation(text);
    ASSERT_TRUE(turns.ok()) << turns.status();
    EXPECT_THAT(Flatten(*turns),
                ElementsAre(std::pair(Turn::kHuman, "q"), std::pair(Turn::kAssistant, "")));
  }
}

TEST(ParseHhConversationTest, RequiresHumanStart) {
  for (const char* text : {"Human: q\n\nAssistant: a", "\nHuman: q", "", "\n\nHuman:q"}) {
    EXPECT_EQ(ParseHhConversation(text).status().code(), absl::StatusCode::kInvalidArgument)
        << text;
  }
}

TEST(SplitHhConversationTest, SplitsAtLastAssistantMarker) {
  auto split = SplitHhConversation("\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant:  d\ne");
  ASSERT_TRUE(split.ok()) << split.status();
  EXPECT_EQ(split->prompt, "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant:");
  EXPECT_EQ(split->response, " d\ne");  // only one space removed
}

TEST(SplitHhConversationTest, NoAssistantTurn) {
  EXPECT_EQ(SplitHhConversation("\n\nHuman: a  Assistant: b").status().code(),
            absl::StatusCode::kInvalidArgument);
}

// ---- ReadTextLines ------------------------------------------------------------------------------

TEST(ReadTextLinesTest, KeepsBlankLinesAndHandlesNoFinalNewline) {
  auto lines = ReadTextLines(WriteFile("a\n\r\nb\r\n\nc"));
  ASSERT_TRUE(lines.ok()) << lines.status();
  EXPECT_THAT(*lines, ElementsAre("a", "", "b", "", "c"));
}

TEST(ReadTextLinesTest, Gzip) {
  auto lines = ReadTextLines(WriteGzFile("x\ny\n"));
  ASSERT_TRUE(lines.ok()) << lines.status();
  EXPECT_THAT(*lines, ElementsAre("x", "y"));
}

TEST(ReadTextLinesTest, Errors) {
  EXPECT_EQ(ReadTextLines(TempPath(".missing.jsonl")).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ReadTextLines(TempPath(".missing.jsonl.gz")).status().code(),
            absl::StatusCode::kNotFound);
  // A truncated gzip stream.
  std::string big;
  for (int i = 0; i < 2000; ++i) absl::StrAppend(&big, "line number ", i * 7919 % 1000, "\n");
  const std::string path = WriteGzFile(big);
  const auto size = std::filesystem::file_size(path);
  std::filesystem::resize_file(path, size / 2);
  EXPECT_EQ(ReadTextLines(path).status().code(), absl::StatusCode::kDataLoss);
  // A ".gz" that is not gzip.
  EXPECT_EQ(ReadTextLines(WriteFile("plain\n", ".gz")).status().code(),
            absl::StatusCode::kDataLoss);
}

// ---- ReadPreferences ----------------------------------------------------------------------------

TEST(ReadPreferencesTest, HhForm) {
  auto data = ReadPreferences(WriteFile(R"({"chosen": "\n\nHuman: hi\n\nAssistant: hello", )"
                                        R"("rejected": "\n\nHuman: hi\n\nAssistant: go away"})"
                                        "\n"));
  ASSERT_TRUE(data.ok()) << data.status();
  ASSERT_THAT(data->items, SizeIs(1));
  const PreferencePair& pair = data->items[0];
  EXPECT_EQ(pair.prompt, "\n\nHuman: hi\n\nAssistant:");
  EXPECT_EQ(pair.chosen, "hello");
  EXPECT_EQ(pair.rejected, "go away");
  EXPECT_EQ(pair.rejected_prompt, "");
  EXPECT_EQ(pair.p_chosen, 1.0);
  EXPECT_EQ(pair.line, 1);
  EXPECT_EQ(data->report.records, 1);
  EXPECT_EQ(data->report.skipped, 0);
}

TEST(ReadPreferencesTest, MultiTurnHhSplit) {
  auto data = ReadPreferences(
      WriteFile(R"({"chosen": "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: good", )"
                R"("rejected": "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: bad"})"
                "\n"));
  ASSERT_TRUE(data.ok()) << data.status();
  ASSERT_THAT(data->items, SizeIs(1));
  EXPECT_EQ(data->items[0].prompt, "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant:");
  EXPECT_EQ(data->items[0].chosen, "good");
  EXPECT_EQ(data->items[0].rejected, "bad");
  EXPECT_EQ(data->items[0].rejected_prompt, "");
}

TEST(ReadPreferencesTest, SidesDifferingBeforeLastTurnKeepTheirPrompts) {
  auto data = ReadPreferences(
      WriteFile(R"({"chosen": "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: x", )"
                R"("rejected": "\n\nHuman: a\n\nAssistant: B\n\nHuman: c\n\nAssistant: y"})"
                "\n"));
  ASSERT_TRUE(data.ok()) << data.status();
  ASSERT_THAT(data->items, SizeIs(1));
  EXPECT_EQ(data->items[0].prompt, "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant:");
  EXPECT_EQ(data->items[0].rejected_prompt,
            "\n\nHuman: a\n\nAssistant: B\n\nHuman: c\n\nAssistant:");
  EXPECT_EQ(data->items[0].chosen, "x");
  EXPECT_EQ(data->items[0].rejected, "y");
}

TEST(ReadPreferencesTest, ExplicitSoftAndMixedForms) {
  auto data = ReadPreferences(WriteFile(
      R"({"prompt": "P1", "chosen": "c", "rejected": "r"})"
      "\n"
      R"({"prompt": "P2", "a": "A", "b": "B", "p_a": 0.7})"
      "\n"
      R"({"prompt": "P3", "a": "A", "b": "B", "p_a": 0})"
      "\n"
      R"({"chosen": "\n\nHuman: h\n\nAssistant: 1", "rejected": "\n\nHuman: h\n\nAssistant: 2"})"
      "\n"));
  ASSERT_TRUE(data.ok()) << data.status();
  ASSERT_THAT(data->items, SizeIs(4));
  const auto& items = data->items;
  EXPECT_EQ(items[0].prompt, "P1");
  EXPECT_EQ(items[0].chosen, "c");
  EXPECT_EQ(items[0].rejected, "r");
  EXPECT_EQ(items[0].p_chosen, 1.0);
  EXPECT_EQ(items[1].prompt, "P2");
  EXPECT_EQ(items[1].chosen, "A");
  EXPECT_EQ(items[1].rejected, "B");
  EXPECT_DOUBLE_EQ(items[1].p_chosen, 0.7);
  EXPECT_EQ(items[2].p_chosen, 0.0);
  EXPECT_EQ(items[3].chosen, "1");
  for (int i = 0; i < 4; ++i) EXPECT_EQ(items[i].line, i + 1);
}

TEST(ReadPreferencesTest, BlankLinesAreNotRecords) {
  auto data =
      ReadPreferences(WriteFile("\n  \n"
                                R"({"prompt": "P", "chosen": "c", "rejected": "r"})"
                                "\n\n"
                                R"({"prompt": "Q", "chosen": "c", "rejected": "r"})"
                                "\n\n"));
  ASSERT_TRUE(data.ok()) << data.status();
  ASSERT_THAT(data->items, SizeIs(2));
  EXPECT_EQ(data->items[0].line, 3);
  EXPECT_EQ(data->items[1].line, 5);
  EXPECT_EQ(data->report.records, 2);
  EXPECT_EQ(data->report.skipped, 0);
}

constexpr char kGood[] = R"({"prompt": "P", "chosen": "c", "rejected": "r"})";

// One bad record per line 2.., each with the reason expected in its problem.
const std::vector<std::pair<std::string, std::string>>& BadRecords() {
  static const auto* bad = new std::vector<std::pair<std::string, std::string>>{
      {R"({"prompt": "P", "chosen": "c", )", "invalid JSON"},
      {R"(["not", "an", "object"])", "not a JSON object"},
      {R"({"prompt": "P", "chosen": "c"})", R"(missing field "rejected")"},
      {R"({"prompt": "P", "chosen": 3, "rejected": "r"})", R"(field "chosen" is not a string)"},
      {R"({"prompt": "P", "a": "A", "b": "B", "p_a": 1.5})",
       R"(field "p_a" = 1.5 is not in [0, 1])"},
      {R"({"prompt": "P", "a": "A", "b": "B", "p_a": "0.5"})", R"(field "p_a" is not a number)"},
      {R"({"prompt": "P", "a": "A", "b": "B"})", R"(missing field "p_a")"},
      {R"({"prompt": "", "chosen": "c", "rejected": "r"})", "prompt: empty prompt"},
      {R"({"prompt": "P", "chosen": "same", "rejected": "same"})", "chosen and rejected are equal"},
      {R"({"chosen": "\n\nHuman: q\n\nAssistant: ", "rejected": "\n\nHuman: q\n\nAssistant: r"})",
       "chosen: empty response"},
      {R"({"chosen": "Human: q\n\nAssistant: a", "rejected": "\n\nHuman: q\n\nAssistant: r"})",
       "chosen: HH conversation does not start with"},
      {R"({"chosen": "\n\nHuman: q\n\nAssistant: a", "rejected": "\n\nHuman: q"})",
       "rejected: no Assistant turn"},
      {R"({"chosen": "\n\nHuman: q\n\nAssistant: a", "rejected": "\n\nHuman: q\n\nAssistant: a"})",
       "chosen and rejected are equal"},
      {R"({"text": "x"})", "unknown record form"},
  };
  return *bad;
}

TEST(ReadPreferencesTest, BadRecordsAreSkippedAndReportedWithFileAndLine) {
  std::string content = absl::StrCat(kGood, "\n");
  for (const auto& [record, reason] : BadRecords()) absl::StrAppend(&content, record, "\n");
  absl::StrAppend(&content, kGood, "\n");
  const std::string path = WriteFile(content);
  ReadOptions options;
  options.max_bad = 100;
  auto data = ReadPreferences(path, options);
  ASSERT_TRUE(data.ok()) << data.status();
  const size_t n = BadRecords().size();
  EXPECT_THAT(data->items, SizeIs(2));
  EXPECT_EQ(data->items[1].line, static_cast<int64_t>(n) + 2);
  EXPECT_EQ(data->report.records, static_cast<int64_t>(n) + 2);
  EXPECT_EQ(data->report.skipped, static_cast<int64_t>(n));
  ASSERT_THAT(data->report.problems, SizeIs(n));
  for (size_t i = 0; i < n; ++i) {
    EXPECT_THAT(data->report.problems[i], StartsWith(absl::StrCat(path, ":", i + 2, ": ")));
    EXPECT_THAT(data->report.problems[i], HasSubstr(BadRecords()[i].second));
  }
}

TEST(ReadPreferencesTest, StrictFailsOnFirstBadRecord) {
  const std::string path = WriteFile(
      absl::StrCat(kGood, "\n\n", BadRecords()[2].first, "\n", BadRecords()[0].first, "\n"));
  ReadOptions options;
  options.strict = true;
  auto data = ReadPreferences(path, options);
  EXPECT_EQ(data.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(data.status().message(), absl::StrCat(path, ":3: missing field \"rejected\""));
}

TEST(ReadPreferencesTest, MoreThanMaxBadFails) {
  std::string content = absl::StrCat(kGood, "\n");
  for (int i = 0; i < 3; ++i) absl::StrAppend(&content, "{oops\n");
  const std::string path = WriteFile(content);
  ReadOptions options;
  options.max_bad = 3;
  auto data = ReadPreferences(path, options);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->report.skipped, 3);

  options.max_bad = 2;
  data = ReadPreferences(path, options);
  EXPECT_EQ(data.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(data.status().message(), HasSubstr("more than 2 bad records"));
  EXPECT_THAT(data.status().message(),
              HasSubstr(absl::StrCat("first: ", path, ":2: invalid JSON")));
}

TEST(ReadPreferencesTest, EmptyOrAllBadFileFails) {
  EXPECT_EQ(ReadPreferences(WriteFile("")).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadPreferences(WriteFile("\n\n")).status().code(), absl::StatusCode::kInvalidArgument);
  auto data = ReadPreferences(WriteFile("{oops\n"));
  EXPECT_EQ(data.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(data.status().message(), HasSubstr("no valid records"));
  EXPECT_EQ(ReadPreferences(TempPath(".missing.jsonl")).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(ReadPreferencesTest, Gzip) {
  auto data = ReadPreferences(WriteGzFile(absl::StrCat(kGood, "\n\n", kGood, "\n")));
  ASSERT_TRUE(data.ok()) << data.status();
  ASSERT_THAT(data->items, SizeIs(2));
  EXPECT_EQ(data->items[1].line, 3);
  EXPECT_EQ(data->items[1].chosen, "c");
}

// ---- ReadDemonstrations -------------------------------------------------------------------------

TEST(ReadDemonstrationsTest, PromptResponse) {
  auto data = ReadDemonstrations(WriteFile(R"({"prompt": "P", "response": "R"})"
                                           "\n"));
  ASSERT_TRUE(data.ok()) << data.status();
  ASSERT_THAT(data->items, SizeIs(1));
  EXPECT_THAT(Flatten(data->items[0].segments),
              ElementsAre(std::pair("P", false), std::pair("R", true)));
  EXPECT_EQ(data->items[0].line, 1);
}

TEST(ReadDemonstrationsTest, TextIsADocumentTrainedWhole) {
  auto data = ReadDemonstrations(WriteFile(R"({"text": "a whole document"})"
                                           "\n"
                                           R"({"text": ""})"
                                           "\n"));
  ASSERT_TRUE(data.ok()) << data.status();
  ASSERT_THAT(data->items, SizeIs(1));
  EXPECT_THAT(Flatten(data->items[0].segments), ElementsAre(std::pair("a whole document", true)));
  EXPECT_EQ(data->report.skipped, 1);
}

TEST(ReadDemonstrationsTest, HhTranscriptSkipsEmptyAssistantTurns) {
  auto data = ReadDemonstrations(WriteFile(
      R"({"chosen": "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: ", "rejected": "x"})"
      "\n"));
  ASSERT_TRUE(data.ok()) << data.status();
  ASSERT_THAT(data->items, SizeIs(1));
  EXPECT_THAT(Flatten(data->items[0].segments),
              ElementsAre(std::pair("\n\nHuman: a", false), std::pair("\n\nAssistant:", false),
                          std::pair("b", true), std::pair("\n\nHuman: c", false)));
}

TEST(ReadDemonstrationsTest, BadRecords) {
  const std::string path = WriteFile(R"({"prompt": "P", "response": "R"})"
                                     "\n"
                                     R"({"chosen": "\n\nHuman: a\n\nAssistant: "})"
                                     "\n"
                                     R"({"prompt": "P", "response": ""})"
                                     "\n"
                                     R"({"prompt": "P"})"
                                     "\n"
                                     R"({"chosen": "Human: a\n\nAssistant: b"})"
                                     "\n");
  auto data = ReadDemonstrations(path);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_THAT(data->items, SizeIs(1));
  EXPECT_THAT(data->report.problems,
              ElementsAre(absl::StrCat(path, ":2: chosen: no non-empty Assistant turn to train on"),
                          absl::StrCat(path, ":3: response: empty response"),
                          absl::StrCat(path, ":4: missing field \"response\""),
                          HasSubstr(absl::StrCat(path, ":5: chosen: HH conversation"))));
}

// ---- The real HH data (shared/data/hh) ----------------------------------------------------------

// Returns the path of shared/data/hh/<name>, or "" when RLHF_SHARED_DIR is unset or it is missing.
std::string HhPath(const std::string& name) {
  const char* dir = std::getenv("RLHF_SHARED_DIR");
  if (dir == nullptr) return "";
  const std::string path = absl::StrCat(dir, "/data/hh/", name);
  return std::filesystem::exists(path) ? path : "";
}

std::vector<int64_t> ProblemLines(const ReadReport& report, const std::string& path) {
  std::vector<int64_t> lines;
  for (const std::string& problem : report.problems) {
    const std::string rest = problem.substr(path.size() + 1);
    lines.push_back(std::stoll(rest.substr(0, rest.find(':'))));
  }
  return lines;
}

TEST(RealDataTest, HarmlessBaseJsonl) {
  const std::string path = HhPath("harmless-base.test.jsonl");
  if (path.empty()) GTEST_SKIP() << "RLHF_SHARED_DIR unset or data missing";
  auto data = ReadPreferences(path);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->report.records, 1000);
  EXPECT_EQ(data->report.skipped, 3);
  EXPECT_THAT(data->items, SizeIs(997));
  EXPECT_THAT(ProblemLines(data->report, path), ElementsAre(87, 517, 926));
  for (const std::string& problem : data->report.problems) {
    EXPECT_THAT(problem, HasSubstr("chosen: empty response"));
  }
  for (const PreferencePair& pair : data->items) {
    EXPECT_EQ(pair.rejected_prompt, "") << pair.line;
    EXPECT_THAT(pair.prompt, StartsWith("\n\nHuman: "));
  }
}

TEST(RealDataTest, HarmlessBaseGz) {
  const std::string path = HhPath("harmless-base.test.jsonl.gz");
  if (path.empty()) GTEST_SKIP() << "RLHF_SHARED_DIR unset or data missing";
  ReadOptions options;
  options.max_bad = 100;
  auto data = ReadPreferences(path, options);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->report.records, 2312);
  EXPECT_EQ(data->report.skipped, 4);
  EXPECT_THAT(data->items, SizeIs(2308));
  EXPECT_THAT(ProblemLines(data->report, path), ElementsAre(87, 517, 926, 1104));
  // Records (0-based) 1254, 1688, 1950, 1952, 2036 differ before the last Assistant turn.
  std::vector<int64_t> differing;
  for (const PreferencePair& pair : data->items) {
    if (!pair.rejected_prompt.empty()) differing.push_back(pair.line - 1);
  }
  EXPECT_THAT(differing, ElementsAre(1254, 1688, 1950, 1952, 2036));

  // The default max_bad (10) is enough; strict is not.
  EXPECT_TRUE(ReadPreferences(path).ok());
  options.strict = true;
  EXPECT_EQ(ReadPreferences(path, options).status().message(),
            absl::StrCat(path, ":87: chosen: empty response"));
}

TEST(RealDataTest, HarmlessBaseGzDemonstrations) {
  const std::string path = HhPath("harmless-base.test.jsonl.gz");
  if (path.empty()) GTEST_SKIP() << "RLHF_SHARED_DIR unset or data missing";
  auto data = ReadDemonstrations(path);
  ASSERT_TRUE(data.ok()) << data.status();
  // Record 86 has an empty final Assistant turn but earlier non-empty ones; 516, 925 and 1103
  // have nothing to train on.
  EXPECT_THAT(ProblemLines(data->report, path), ElementsAre(517, 926, 1104));
  EXPECT_THAT(data->items, SizeIs(2309));
}

}  // namespace
}  // namespace rlhf::data
