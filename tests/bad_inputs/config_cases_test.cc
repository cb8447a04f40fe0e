// Bad configs (the typed loader, each service's Validate*Config, `rlhf check-config`) and bad
// data files (preference pairs, demonstrations, the learner's prompts). Every message names the
// source and the key, or the file and the line.
#include "cli/check_config_command.h"
#include "common/config/config.h"
#include "common/data/preference_data.h"
#include "rlhf/v1/config.pb.h"
#include "services/learner/learner.h"
#include "services/learner/prompt_pool.h"
#include "services/reward/scorers.h"
#include "tests/bad_inputs/catalogue.h"

namespace rlhf::bad_inputs {
namespace {

// ---------------------------------------------------------------------------------------------
// Configs.

Answer LoadLearnerYaml(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  rlhf::v1::LearnerConfig config;
  return FromStatus(
      config::LoadConfigFromString(yaml, config::ConfigFormat::kYaml, overrides, &config));
}

// A learner config that ValidateLearnerConfig accepts, as YAML, with `extra` lines appended.
std::string LearnerYaml(const std::string& extra = "") {
  return "total_steps: 10\nmax_queue: 16\nppo:\n  batch_size: 8\n  minibatch_size: 4\n" + extra;
}

// Loads `yaml` as a learner config and runs ValidateLearnerConfig on it.
Answer ValidateLearner(const std::string& yaml) {
  rlhf::v1::LearnerConfig config;
  absl::Status s =
      config::LoadConfigFromString(yaml, config::ConfigFormat::kYaml, {}, &config);
  if (!s.ok()) return FromStatus(s);
  return FromStatus(learner::ValidateLearnerConfig(config));
}

Answer ValidateReward(const std::string& yaml) {
  rlhf::v1::RewardConfig config;
  absl::Status s =
      config::LoadConfigFromString(yaml, config::ConfigFormat::kYaml, {}, &config);
  if (!s.ok()) return FromStatus(s);
  return FromStatus(reward::ValidateScorerConfig(config));
}

// `rlhf check-config --service <service>` on `yaml` written to a file.
Answer CheckConfig(TempDir& dir, const std::string& service, const std::string& yaml) {
  cli::CheckConfigArgs args;
  args.service = service;
  args.files = {dir.Write(service + ".yaml", yaml)};
  return FromStatus(cli::RunCheckConfig(args));
}

using ConfigCase = Case<TempDir>;

ConfigCase Learner(std::string id, std::string input, std::string needle, std::string yaml) {
  return {std::move(id), std::move(input), "INVALID_ARGUMENT", std::move(needle),
          [yaml](TempDir&) { return ValidateLearner(yaml); }};
}

const std::vector<ConfigCase> kConfigCases = RegisterCases<TempDir>(
    "configs",
    {
        Learner("config-wrong-type", "ppo.batch_size: \"eight\" (a string for an int)",
                "ppo.batch_size", "ppo:\n  batch_size: \"eight\"\n"),
        Learner("config-unknown-key", "max_queu: 16 (a misspelt key)",
                "did you mean 'max_queue'?", "max_queu: 16\n"),
        Learner("config-bad-enum", "ppo.advantage: GEA (not an enum name)", "ppo.advantage",
                "ppo:\n  advantage: GEA\n"),
        Learner("config-int-out-of-range", "max_queue: 99999999999 (beyond int32)", "max_queue",
                "max_queue: 99999999999\n"),
        Learner("config-duplicate-key", "total_steps given twice", "total_steps",
                "total_steps: 1\ntotal_steps: 2\n"),
        Learner("config-not-yaml", "an unclosed flow sequence", "<string>",
                "ppo: [1, 2\n"),
        Learner("config-message-as-scalar", "ppo: 5 (a number for a message)", "ppo",
                "ppo: 5\n"),
        Learner("config-recursive-alias", "&x on the document, ppo: *x (a node containing itself; "
                "found by fuzzing: it overflowed the stack)",
                "nested deeper than 64 levels", "&x\nppo: *x\n"),
        {"config-json-too-deep", "JSON arrays nested 100,000 deep", "INVALID_ARGUMENT",
         "nested deeper than 64 levels",
         [](TempDir&) {
           rlhf::v1::LearnerConfig config;
           return FromStatus(config::LoadConfigFromString(
               "{\"ppo\": " + std::string(100000, '[') + std::string(100000, ']') + "}",
               config::ConfigFormat::kJson, {}, &config));
         }},
        {"config-bad-override", "--set ppo.batch_sise=4 (unknown path)", "INVALID_ARGUMENT",
         "batch_sise",
         [](TempDir&) { return LoadLearnerYaml(LearnerYaml(), {"ppo.batch_sise=4"}); }},
        {"config-override-without-value", "--set total_steps (no '=')", "INVALID_ARGUMENT",
         "total_steps", [](TempDir&) { return LoadLearnerYaml(LearnerYaml(), {"total_steps"}); }},
        Learner("learner-minibatch-does-not-divide-batch", "ppo.minibatch_size 3 for batch 8",
                "ppo.minibatch_size must be > 0 and divide ppo.batch_size",
                "total_steps: 10\nmax_queue: 16\nppo:\n  batch_size: 8\n  minibatch_size: 3\n"),
        Learner("learner-queue-below-batch", "max_queue 4 below ppo.batch_size 8",
                "max_queue must be >= ppo.batch_size",
                "total_steps: 10\nmax_queue: 4\nppo:\n  batch_size: 8\n  minibatch_size: 4\n"),
        Learner("learner-zero-steps", "total_steps 0", "total_steps must be > 0",
                "total_steps: 0\nmax_queue: 16\nppo:\n  batch_size: 8\n  minibatch_size: 4\n"),
        Learner("learner-negative-lease", "lease_seconds -1", "lease_seconds must be > 0",
                LearnerYaml("lease_seconds: -1\n")),
        Learner("learner-nan-temperature", "sampling.temperature .nan",
                "sampling.temperature",
                LearnerYaml("sampling: {temperature: .nan}\n")),
        Learner("learner-top-p-above-one", "sampling.top_p 1.5", "sampling.top_p must be in",
                LearnerYaml("sampling: {top_p: 1.5}\n")),
        Learner("learner-rloo-without-groups", "ppo.advantage RLOO with group_size 1",
                "needs ppo.group_size >= 2", LearnerYaml("  advantage: RLOO\n")),
        Learner("learner-batch-not-whole-groups", "RLOO, group_size 3, batch_size 8",
                "multiple of ppo.group_size",
                LearnerYaml("  advantage: RLOO\n  group_size: 3\n")),
        {"reward-model-and-rules", "a reward config with both model and rules",
         "INVALID_ARGUMENT", "exactly one of 'model' and 'rules'",
         [](TempDir&) {
           return ValidateReward("model: /m\nrules: [{kind: CONTAINS, word: a, weight: 1}]\n");
         }},
        {"reward-rule-bad-regex", "rule pattern \"(unclosed\"", "INVALID_ARGUMENT",
         "rules[0]: bad pattern",
         [](TempDir&) {
           return ValidateReward("rules: [{kind: REGEX_MATCH, pattern: \"(unclosed\", weight: 1}]\n");
         }},
        {"reward-rule-without-word", "a WORD_RATE rule without a word", "INVALID_ARGUMENT",
         "rules[0]: needs a non-empty 'word'",
         [](TempDir&) { return ValidateReward("rules: [{kind: WORD_RATE, weight: 1}]\n"); }},
        {"check-config-minibatch", "`rlhf check-config --service learner`, minibatch 3 of 8",
         "INVALID_ARGUMENT", "ppo.minibatch_size",
         [](TempDir& dir) {
           return CheckConfig(
               dir, "learner",
               "total_steps: 10\nmax_queue: 16\nppo:\n  batch_size: 8\n  minibatch_size: 3\n");
         }},
        {"check-config-unknown-key", "`rlhf check-config --service reward`, key 'rule'",
         "INVALID_ARGUMENT", "did you mean 'rules'?",
         [](TempDir& dir) { return CheckConfig(dir, "reward", "rule: []\n"); }},
    });

class ConfigTest : public RowsWith<ConfigCase, SuiteTempDir> {};

TEST_P(ConfigTest, Rejected) { ExpectAnswer(GetParam(), GetParam().run(env())); }

INSTANTIATE_TEST_SUITE_P(Catalogue, ConfigTest, ::testing::ValuesIn(kConfigCases),
                         CaseName<TempDir>);

// The base configs the rows edit are valid (a row must fail for its own edit).
TEST(ConfigTest, TheBaseConfigsAreValid) {
  EXPECT_EQ(ValidateLearner(LearnerYaml()).code, "OK") << ValidateLearner(LearnerYaml()).message;
  TempDir dir("valid_configs");
  EXPECT_EQ(CheckConfig(dir, "learner", LearnerYaml()).code, "OK");
  EXPECT_EQ(ValidateReward("rules: [{kind: CONTAINS, word: a, weight: 1}]\n").code, "OK");
}

// ---------------------------------------------------------------------------------------------
// Data files: each read strictly (any bad record is an error naming file:line).

Answer Preferences(TempDir& dir, const std::string& name, const std::string& text) {
  data::ReadOptions strict;
  strict.strict = true;
  return FromStatus(data::ReadPreferences(dir.Write(name, text), strict).status());
}
Answer Demonstrations(TempDir& dir, const std::string& name, const std::string& text) {
  data::ReadOptions strict;
  strict.strict = true;
  return FromStatus(data::ReadDemonstrations(dir.Write(name, text), strict).status());
}
Answer Prompts(TempDir& dir, const std::string& name, const std::string& text) {
  return FromStatus(learner::ReadPromptsJsonl(dir.Write(name, text)).status());
}

const char kGoodPair[] = R"({"prompt": "p", "chosen": "a", "rejected": "b"})" "\n";
const char kGoodDemo[] = R"({"prompt": "p", "response": "r"})" "\n";

using DataCase = Case<TempDir>;

DataCase Data(std::string id, std::string input, std::string needle,
              Answer (*reader)(TempDir&, const std::string&, const std::string&),
              std::string text, std::string code = "INVALID_ARGUMENT") {
  const std::string name = id + ".jsonl";
  return {std::move(id), std::move(input), std::move(code), std::move(needle),
          [reader, name, text](TempDir& dir) { return reader(dir, name, text); }};
}

const std::vector<DataCase> kDataCases = RegisterCases<TempDir>(
    "data files",
    {
        Data("preference-not-json", "line 2 is not JSON",
             "preference-not-json.jsonl:2", Preferences, std::string(kGoodPair) + "{oops\n"),
        Data("preference-missing-rejected", "line 1 has no \"rejected\"",
             "preference-missing-rejected.jsonl:1", Preferences,
             R"({"prompt": "p", "chosen": "a"})" "\n"),
        Data("preference-p-a-out-of-range", "a soft label with p_a 1.5",
             "preference-p-a-out-of-range.jsonl:1", Preferences,
             R"({"prompt": "p", "a": "x", "b": "y", "p_a": 1.5})" "\n"),
        Data("preference-non-string-field", "\"chosen\": 5",
             "preference-non-string-field.jsonl:1", Preferences,
             R"({"prompt": "p", "chosen": 5, "rejected": "b"})" "\n"),
        Data("preference-equal-sides", "chosen and rejected are the same text",
             "preference-equal-sides.jsonl:1", Preferences,
             R"({"prompt": "p", "chosen": "a", "rejected": "a"})" "\n"),
        Data("preference-hh-without-assistant", "an HH pair with no Assistant turn",
             "preference-hh-without-assistant.jsonl:1", Preferences,
             R"({"chosen": "\n\nHuman: hi", "rejected": "\n\nHuman: ho"})" "\n"),
        Data("preference-corrupt-gzip", "a .gz name over bytes that are not gzip", "gz",
             [](TempDir& dir, const std::string&, const std::string& text) {
               return Preferences(dir, "corrupt.jsonl.gz", text);
             },
             "\x1f\x8b\x08 not really gzip", "DATA_LOSS"),
        Data("demonstration-empty-response", "a demonstration with an empty response",
             "demonstration-empty-response.jsonl:2", Demonstrations,
             std::string(kGoodDemo) + R"({"prompt": "p", "response": ""})" "\n"),
        Data("demonstration-not-an-object", "line 1 is a JSON array",
             "demonstration-not-an-object.jsonl:1", Demonstrations, "[1, 2]\n"),
        Data("prompts-no-prompt-field", "a prompts line without \"prompt\"",
             "prompts-no-prompt-field.jsonl:2: no \"prompt\" field", Prompts,
             R"({"prompt": "a"})" "\n" R"({"text": "b"})" "\n"),
        Data("prompts-empty-prompt", "a prompts line with \"prompt\": \"\"",
             "prompts-empty-prompt.jsonl:1: empty prompt", Prompts, R"({"prompt": ""})" "\n"),
        Data("prompts-empty-file", "a prompts file of blank lines",
             "prompts-empty-file.jsonl: no prompts", Prompts, "\n  \n"),
    });

class DataTest : public RowsWith<DataCase, SuiteTempDir> {};

TEST_P(DataTest, Rejected) { ExpectAnswer(GetParam(), GetParam().run(env())); }

INSTANTIATE_TEST_SUITE_P(Catalogue, DataTest, ::testing::ValuesIn(kDataCases), CaseName<TempDir>);

TEST(DataTest, TheGoodRecordsAreRead) {
  TempDir dir("valid_data");
  EXPECT_EQ(Preferences(dir, "p.jsonl", kGoodPair).code, "OK");
  EXPECT_EQ(Demonstrations(dir, "d.jsonl", kGoodDemo).code, "OK");
  EXPECT_EQ(Prompts(dir, "q.jsonl", R"({"prompt": "a"})" "\n").code, "OK");
}

}  // namespace
}  // namespace rlhf::bad_inputs
