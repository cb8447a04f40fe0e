#include "common/config/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "rlhf/v1/config.pb.h"
#include "rlhf/v1/tensor.pb.h"

namespace rlhf::config {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kRewardYaml[] = R"(
server:
  listen_address: "0.0.0.0:50051"
  metrics_port: 9100
rules:
  - kind: WORD_RATE
    word: please
    weight: -0.5
  - {kind: LENGTH, target_length: 200}
batching:
  max_wait_ms: 2.5
threads: 4
)";

constexpr char kRewardJson[] = R"({
  "server": {"listenAddress": "0.0.0.0:50051", "metrics_port": 9100},
  "rules": [{"kind": "WORD_RATE", "word": "please", "weight": -0.5},
            {"kind": "LENGTH", "target_length": 200}],
  "batching": {"max_wait_ms": 2.5},
  "threads": 4
})";

void ExpectRewardSample(const rlhf::v1::RewardConfig& c) {
  EXPECT_EQ(c.server().listen_address(), "0.0.0.0:50051");
  EXPECT_EQ(c.server().metrics_port(), 9100);
  ASSERT_EQ(c.rules_size(), 2);
  EXPECT_EQ(c.rules(0).kind(), rlhf::v1::RewardRule::WORD_RATE);
  EXPECT_EQ(c.rules(0).word(), "please");
  EXPECT_EQ(c.rules(0).weight(), -0.5);
  EXPECT_EQ(c.rules(1).kind(), rlhf::v1::RewardRule::LENGTH);
  EXPECT_EQ(c.rules(1).target_length(), 200);
  EXPECT_EQ(c.rules(1).weight(), 1);  // proto2 default
  EXPECT_EQ(c.batching().max_wait_ms(), 2.5);
  EXPECT_EQ(c.batching().max_batch(), 64);
  EXPECT_EQ(c.threads(), 4);
  EXPECT_FALSE(c.has_model());
}

// Loads YAML `text` into a RewardConfig, expects InvalidArgument, returns the message.
std::string YamlError(const std::string& text, const std::vector<std::string>& overrides = {}) {
  rlhf::v1::RewardConfig config;
  const absl::Status status = LoadConfigFromString(text, ConfigFormat::kYaml, overrides, &config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  return std::string(status.message());
}

std::string JsonError(const std::string& text) {
  rlhf::v1::RewardConfig config;
  const absl::Status status = LoadConfigFromString(text, ConfigFormat::kJson, {}, &config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  return std::string(status.message());
}

class ConfigFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "/config_test_XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }

  std::string dir_;
};

TEST_F(ConfigFileTest, LoadsYamlYmlAndJsonFiles) {
  for (const auto& [name, text] :
       {std::pair{"reward.yaml", kRewardYaml}, std::pair{"reward.yml", kRewardYaml},
        std::pair{"reward.json", kRewardJson}}) {
    SCOPED_TRACE(name);
    rlhf::v1::RewardConfig config;
    const absl::Status status = LoadConfig(Write(name, text), {}, &config);
    ASSERT_TRUE(status.ok()) << status;
    ExpectRewardSample(config);
  }
}

TEST_F(ConfigFileTest, FileErrorsNameTheFile) {
  rlhf::v1::RewardConfig config;
  const std::string missing = dir_ + "/missing.yaml";
  absl::Status status = LoadConfig(missing, {}, &config);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(status.message()), StartsWith(missing + ": "));

  status = LoadConfig(Write("reward.txt", "threads: 1"), {}, &config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("expected .yaml, .yml or .json"));

  std::filesystem::create_directory(dir_ + "/dir.yaml");
  status = LoadConfig(dir_ + "/dir.yaml", {}, &config);
  EXPECT_THAT(std::string(status.message()), HasSubstr("is a directory"));

  const std::string bad = Write("bad.yaml", "server:\n  metrics_prot: 1\n");
  status = LoadConfig(bad, {"threads=2"}, &config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              AllOf(StartsWith(bad + ": key 'server.metrics_prot' (line 2): "),
                    HasSubstr("did you mean 'metrics_port'?")));
}

TEST(ConfigTest, LoadsFromStrings) {
  rlhf::v1::RewardConfig yaml, json;
  ASSERT_TRUE(LoadConfigFromString(kRewardYaml, ConfigFormat::kYaml, {}, &yaml).ok());
  ASSERT_TRUE(LoadConfigFromString(kRewardJson, ConfigFormat::kJson, {}, &json).ok());
  ExpectRewardSample(yaml);
  ExpectRewardSample(json);
}

TEST(ConfigTest, EmptyDocumentAndNullsLeaveDefaults) {
  rlhf::v1::ReferenceConfig config;
  config.set_threads(3);  // Replaced, not merged.
  ASSERT_TRUE(LoadConfigFromString("", ConfigFormat::kYaml, {}, &config).ok());
  EXPECT_FALSE(config.has_threads());
  ASSERT_TRUE(LoadConfigFromString("server:\nmodel: ~\n", ConfigFormat::kYaml, {}, &config).ok());
  EXPECT_FALSE(config.has_server());
  EXPECT_FALSE(config.has_model());
  EXPECT_EQ(config.server().listen_address(), "127.0.0.1:0");
}

TEST(ConfigTest, ScalarsFollowTheFieldType) {
  rlhf::v1::ReferenceConfig config;
  const std::string yaml =
      "model: 123\n"                           // a plain scalar for a string field is text
      "server: {shutdown_grace_seconds: 7}\n"  // an integer for a double
      "batching: {max_wait_ms: .inf}\n";
  ASSERT_TRUE(LoadConfigFromString(yaml, ConfigFormat::kYaml, {}, &config).ok());
  EXPECT_EQ(config.model(), "123");
  EXPECT_EQ(config.server().shutdown_grace_seconds(), 7.0);
  EXPECT_TRUE(std::isinf(config.batching().max_wait_ms()));

  // int64 (exact beyond 2^53), bool, enum, fixed32, bytes (base64), repeated scalars.
  rlhf::v1::WeightChunk chunk;
  const std::string chunk_yaml =
      "version: 9007199254740993\nlast: true\ndtype: DTYPE_INT64\ncrc32c: 4294967295\n"
      "data: aGk=\nshape: [2, 3]\n";
  const absl::Status status = LoadConfigFromString(chunk_yaml, ConfigFormat::kYaml, {}, &chunk);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(chunk.version(), 9007199254740993);
  EXPECT_TRUE(chunk.last());
  EXPECT_EQ(chunk.dtype(), rlhf::v1::DTYPE_INT64);
  EXPECT_EQ(chunk.crc32c(), 4294967295u);
  EXPECT_EQ(chunk.data(), "hi");
  EXPECT_THAT(chunk.shape(), ::testing::ElementsAre(2, 3));
}

TEST(ConfigTest, ConfigToJsonShowsDefaults) {
  rlhf::v1::RewardConfig config;
  config.add_rules()->set_kind(rlhf::v1::RewardRule::CONTAINS);
  const std::string text = ConfigToJson(config);
  EXPECT_EQ(text.find('\n'), std::string::npos) << "one line for the log";
  const nlohmann::json json = nlohmann::json::parse(text);
  EXPECT_EQ(json["server"]["listen_address"], "127.0.0.1:0");
  EXPECT_EQ(json["server"]["max_message_bytes"], 67108864);
  EXPECT_EQ(json["server"]["shutdown_grace_seconds"], 5);
  EXPECT_EQ(json["batching"]["max_queued_sequences"], 4096);
  EXPECT_EQ(json["limits"]["max_batch"], 256);
  EXPECT_EQ(json["threads"], 0);
  EXPECT_EQ(json["model"], "");
  EXPECT_EQ(json["rules"][0]["kind"], "CONTAINS");
  EXPECT_EQ(json["rules"][0]["weight"], 1);
  EXPECT_FALSE(config.has_server()) << "the argument is not modified";
}

TEST(ConfigTest, ConfigToJsonReadsBackAsTheSameConfig) {
  // The launcher writes each child's config with ConfigToJson; 64-bit integers come out quoted
  // (proto3 JSON) and must read back.
  rlhf::v1::LearnerConfig config;
  config.set_policy("model.bin");
  config.set_seed(18446744073709551615ULL);
  config.mutable_ppo()->set_batch_size(32);
  rlhf::v1::LearnerConfig back;
  ASSERT_TRUE(
      LoadConfigFromString(ConfigToJson(config), ConfigFormat::kJson, {}, &back).ok());
  EXPECT_EQ(back.seed(), config.seed());
  EXPECT_EQ(back.policy(), "model.bin");
  EXPECT_EQ(back.ppo().batch_size(), 32);
  EXPECT_EQ(back.ppo().seed(), 1u);
  rlhf::v1::LearnerConfig bad;
  EXPECT_FALSE(LoadConfigFromString(R"({"seed": "x1"})", ConfigFormat::kJson, {}, &bad).ok());
}

TEST(ConfigTest, OverridesNestedScalarsEnumsAndLists) {
  rlhf::v1::RewardConfig config;
  std::vector<std::string> all = {
      "server.metrics_port=-1", "batching.max_wait_ms=0.25",
      "limits.maxBatch=8",    // JSON names work too
      "model=/models/rm=v2",  // only the first '=' splits
  };
  all.push_back(R"(rules=[{"kind":"WORD_RATE","word":"a"}, {kind: REGEX_MATCH, pattern: "x+"}])");
  all.push_back("threads=2");
  all.push_back("threads=3");  // later wins
  absl::Status status = LoadConfigFromString(kRewardYaml, ConfigFormat::kYaml, all, &config);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(config.server().metrics_port(), -1);
  EXPECT_EQ(config.server().listen_address(), "0.0.0.0:50051");  // siblings kept
  EXPECT_EQ(config.batching().max_wait_ms(), 0.25);
  EXPECT_EQ(config.limits().max_batch(), 8);
  EXPECT_EQ(config.model(), "/models/rm=v2");
  ASSERT_EQ(config.rules_size(), 2);  // the list is replaced whole
  EXPECT_EQ(config.rules(0).word(), "a");
  EXPECT_EQ(config.rules(1).kind(), rlhf::v1::RewardRule::REGEX_MATCH);
  EXPECT_EQ(config.rules(1).pattern(), "x+");
  EXPECT_EQ(config.threads(), 3);

  // Enum scalar, a whole message, and resetting with an empty value.
  status = LoadConfigFromString(
      "rules: [{kind: LENGTH}]", ConfigFormat::kYaml,
      {"rules=[{}]", "server={metrics_port: 7}", "batching=", "server.listen_address=h:1"},
      &config);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(config.rules(0).kind(), rlhf::v1::RewardRule::KIND_UNSPECIFIED);
  EXPECT_EQ(config.server().metrics_port(), 7);
  EXPECT_EQ(config.server().listen_address(), "h:1");
  EXPECT_FALSE(config.has_batching());
  rlhf::v1::RewardRule rule;
  ASSERT_TRUE(LoadConfigFromString("{}", ConfigFormat::kJson, {"kind=CONTAINS"}, &rule).ok());
  EXPECT_EQ(rule.kind(), rlhf::v1::RewardRule::CONTAINS);
}

TEST(ConfigErrorTest, UnknownKeysSuggestTheClosestField) {
  EXPECT_THAT(YamlError("modle: x"),
              AllOf(StartsWith("<string>: key 'modle' (line 1): "),
                    HasSubstr("unknown field 'modle' in rlhf.v1.RewardConfig; did you mean "
                              "'model'?")));
  EXPECT_THAT(YamlError("rules:\n  - kind: LENGTH\n    wieght: 2\n"),
              AllOf(HasSubstr("key 'rules[0].wieght' (line 3)"), HasSubstr("'weight'")));
  EXPECT_THAT(JsonError(R"({"server": {"listenAdress": "x"}})"),
              AllOf(HasSubstr("key 'server.listenAdress'"), HasSubstr("'listen_address'")));
  EXPECT_THAT(YamlError("completely_unrelated_thing: 1"), HasSubstr("known names: server, model"));
}

TEST(ConfigErrorTest, WrongTypes) {
  EXPECT_THAT(YamlError("threads: \"5\""),
              HasSubstr("key 'threads' (line 1): expected int32, got string \"5\""));
  EXPECT_THAT(YamlError("threads: abc"), HasSubstr("expected int32, got 'abc'"));
  EXPECT_THAT(YamlError("threads: 1.5"), HasSubstr("expected int32, got '1.5'"));
  EXPECT_THAT(YamlError("threads: 99999999999"),
              HasSubstr("99999999999 is out of range for int32"));
  EXPECT_THAT(YamlError("server: 5"), HasSubstr("key 'server' (line 1): expected a mapping"));
  EXPECT_THAT(YamlError("rules: {kind: LENGTH}"),
              HasSubstr("key 'rules' (line 1): expected a list"));
  EXPECT_THAT(YamlError("rules: [~]"), HasSubstr("key 'rules[0]'"));
  EXPECT_THAT(YamlError("batching: {max_wait_ms: fast}"), HasSubstr("expected double, got 'fast'"));
  EXPECT_THAT(JsonError(R"({"threads": "5"})"), HasSubstr("expected int32, got string \"5\""));
  EXPECT_THAT(JsonError(R"({"model": 5})"),
              HasSubstr("key 'model': expected string, got number 5"));
  EXPECT_THAT(YamlError("- a\n- b\n"), HasSubstr("top level (line 1): expected a mapping"));
  rlhf::v1::WeightChunk chunk;
  absl::Status status = LoadConfigFromString("last: yes", ConfigFormat::kYaml, {}, &chunk);
  EXPECT_THAT(std::string(status.message()), HasSubstr("expected bool, got 'yes'"));
  status = LoadConfigFromString("crc32c: -1", ConfigFormat::kYaml, {}, &chunk);
  EXPECT_THAT(std::string(status.message()), HasSubstr("-1 is out of range for fixed32"));
}

TEST(ConfigErrorTest, BadEnumNames) {
  EXPECT_THAT(YamlError("rules: [{kind: WORD_RAT}]"),
              AllOf(HasSubstr("key 'rules[0].kind' (line 1)"),
                    HasSubstr("bad value 'WORD_RAT' for enum rlhf.v1.RewardRule.Kind"),
                    HasSubstr("did you mean 'WORD_RATE'?"),
                    HasSubstr("(valid: KIND_UNSPECIFIED, WORD_RATE, REGEX_MATCH, LENGTH, "
                              "CONTAINS, TEXT_SHARE)")));
}

TEST(ConfigErrorTest, SyntaxAndDuplicates) {
  EXPECT_THAT(YamlError("server: [1, 2\nthreads: 3"), HasSubstr("invalid YAML"));
  EXPECT_THAT(JsonError(R"({"model": })"), HasSubstr("invalid JSON"));
  EXPECT_THAT(YamlError("model: a\nmodel: b\n"),
              HasSubstr("key 'model' (line 2): duplicate key: field 'model' is set twice"));
  EXPECT_THAT(JsonError(R"({"server": {"metrics_port": 1, "metrics_port": 2}})"),
              HasSubstr("duplicate key 'metrics_port'"));
  EXPECT_THAT(JsonError(R"({"model": "a", "model": "b"})"), HasSubstr("duplicate key 'model'"));
}

TEST(ConfigErrorTest, BadOverrides) {
  EXPECT_THAT(YamlError("", {"threads"}),
              HasSubstr("<string>: override 'threads': expected path.to.field=value"));
  EXPECT_THAT(YamlError("", {"=4"}), HasSubstr("expected path.to.field=value"));
  EXPECT_THAT(YamlError("", {"server..metrics_port=1"}), HasSubstr("empty component"));
  EXPECT_THAT(YamlError("", {"server.metrics_prot=1"}),
              HasSubstr("override 'server.metrics_prot=1': key 'server.metrics_prot': unknown "
                        "field 'metrics_prot' in rlhf.v1.ServerConfig; did you mean "
                        "'metrics_port'?"));
  EXPECT_THAT(YamlError("", {"nosuch.x=1"}), HasSubstr("unknown field 'nosuch'"));
  EXPECT_THAT(YamlError("", {"threads.x=1"}), HasSubstr("key 'threads': is int32, not a message"));
  EXPECT_THAT(YamlError("", {"rules.weight=1"}), HasSubstr("key 'rules': is a list"));
  EXPECT_THAT(YamlError("", {"threads=abc"}),
              HasSubstr("override 'threads=abc': key 'threads': expected int32, got 'abc'"));
  EXPECT_THAT(YamlError("", {"server.metrics_port="}), HasSubstr("expected int32, got ''"));
  EXPECT_THAT(YamlError("", {R"(rules=[{"kind":"NOPE"}])"}),
              HasSubstr("key 'rules[0].kind': bad value string \"NOPE\""));
  EXPECT_THAT(YamlError("", {"rules=[{"}), HasSubstr("value is not valid YAML or JSON"));
  EXPECT_THAT(YamlError("", {"rules=5"}), HasSubstr("key 'rules': expected a list"));
}

}  // namespace
}  // namespace rlhf::config
