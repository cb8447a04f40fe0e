#include "common/checkpoint/hf.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/status.h"
#include "common/checkpoint/safetensors.h"
#include "common/checkpoint/test_util.h"
#include "common/model/llama.h"

namespace rlhf::checkpoint {
namespace {

using ::rlhf::checkpoint::testing::ModelPath;
using ::rlhf::checkpoint::testing::ReadFileOrDie;
using ::rlhf::checkpoint::testing::SmallConfig;
using ::rlhf::checkpoint::testing::TempDir;
using ::rlhf::checkpoint::testing::WriteFileOrDie;
using ::testing::HasSubstr;

model::Llama RandomModel(const model::LlamaConfig& config, uint64_t seed = 7) {
  absl::StatusOr<model::Llama> m = model::CreateRandomLlama(config, seed);
  EXPECT_TRUE(m.ok()) << m.status();
  return *m;
}

// Expects the same parameter names and, after `transform` of a's values, equal values.
void ExpectSameParameters(
    const model::Llama& a, const model::Llama& b,
    const std::function<torch::Tensor(const torch::Tensor&)>& transform = nullptr) {
  auto pa = a->named_parameters();
  auto pb = b->named_parameters();
  ASSERT_EQ(pa.keys(), pb.keys());
  for (const auto& p : pa) {
    SCOPED_TRACE(p.key());
    const torch::Tensor& other = pb[p.key()];
    EXPECT_EQ(other.scalar_type(), torch::kFloat32);
    EXPECT_TRUE(torch::equal(transform ? transform(p.value()) : p.value(), other));
  }
}

nlohmann::json ReadJson(const std::string& path) {
  return nlohmann::json::parse(ReadFileOrDie(path));
}

class HfTest : public ::testing::Test {
 protected:
  // Copies stories260K-hf-no-lm-head into the temp dir after `edit` changes its tensors.
  void WriteEditedFixture(const std::function<void(NamedTensors*)>& edit) {
    const std::string src = ModelPath("stories260K-hf-no-lm-head");
    absl::StatusOr<SafetensorsFile> file = ReadSafetensors(src + "/model.safetensors");
    ASSERT_TRUE(file.ok()) << file.status();
    edit(&file->tensors);
    ASSERT_TRUE(
        WriteSafetensors(dir_.Join("model.safetensors"), file->tensors, file->metadata).ok());
    WriteFileOrDie(dir_.Join("config.json"), ReadFileOrDie(src + "/config.json"));
  }

  // Expects LoadHfLlama(dir_) to fail with InvalidArgument mentioning `substring`.
  void ExpectLoadError(const std::string& substring) {
    absl::StatusOr<model::Llama> m = LoadHfLlama(dir_.path());
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << m.status();
    EXPECT_THAT(m.status().message(), HasSubstr(substring)) << m.status();
  }

  // Expects ReadHfConfig on a config.json holding `text` to fail with InvalidArgument.
  void ExpectConfigError(const std::string& text, const std::string& substring) {
    WriteFileOrDie(dir_.Join("config.json"), text);
    absl::StatusOr<model::LlamaConfig> c = ReadHfConfig(dir_.path());
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << c.status();
    EXPECT_THAT(c.status().message(), HasSubstr(substring)) << c.status();
  }

  TempDir dir_;
};

constexpr char kMinimalConfig[] =
    R"({"hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
        "num_attention_heads": 4, "vocab_size": 40)";

TEST_F(HfTest, Float32RoundTripIsBitIdentical) {
  model::Llama original = RandomModel(SmallConfig());
  ASSERT_TRUE(SaveHfLlama(original, dir_.path(), torch::kFloat32).ok());
  absl::StatusOr<model::Llama> loaded = LoadHfLlama(dir_.path());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ExpectSameParameters(original, *loaded);
  EXPECT_EQ((*loaded)->config().DebugString(), original->config().DebugString());
  const nlohmann::json config = ReadJson(dir_.Join("config.json"));
  EXPECT_EQ(config["architectures"][0], "LlamaForCausalLM");
  EXPECT_EQ(config["model_type"], "llama");
  EXPECT_EQ(config["torch_dtype"], "float32");
}

TEST_F(HfTest, TiedRoundTripWritesNoLmHead) {
  model::LlamaConfig config = SmallConfig();
  config.tie_embeddings = true;
  model::Llama original = RandomModel(config);
  ASSERT_TRUE(SaveHfLlama(original, dir_.path(), torch::kFloat32).ok());
  absl::StatusOr<SafetensorsFile> file = ReadSafetensors(dir_.Join("model.safetensors"));
  ASSERT_TRUE(file.ok()) << file.status();
  for (const auto& [name, t] : file->tensors) EXPECT_NE(name, "lm_head.weight");
  EXPECT_EQ(file->tensors.front().first, "model.embed_tokens.weight");
  absl::StatusOr<model::Llama> loaded = LoadHfLlama(dir_.path());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ExpectSameParameters(original, *loaded);
  EXPECT_TRUE((*loaded)->config().tie_embeddings);
}

TEST_F(HfTest, BFloat16RoundTripEqualsRounding) {
  model::Llama original = RandomModel(SmallConfig());
  ASSERT_TRUE(SaveHfLlama(original, dir_.path(), torch::kBFloat16).ok());
  absl::StatusOr<SafetensorsFile> file = ReadSafetensors(dir_.Join("model.safetensors"));
  ASSERT_TRUE(file.ok()) << file.status();
  for (const auto& [name, t] : file->tensors) EXPECT_EQ(t.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(ReadJson(dir_.Join("config.json"))["torch_dtype"], "bfloat16");
  absl::StatusOr<model::Llama> loaded = LoadHfLlama(dir_.path());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ExpectSameParameters(original, *loaded, [](const torch::Tensor& t) {
    return t.to(torch::kBFloat16).to(torch::kFloat32);
  });
}

TEST_F(HfTest, Float16TensorsAreConverted) {
  model::Llama original = RandomModel(SmallConfig());
  ASSERT_TRUE(SaveHfLlama(original, dir_.path(), torch::kFloat32).ok());
  const std::string path = dir_.Join("model.safetensors");
  absl::StatusOr<SafetensorsFile> file = ReadSafetensors(path);
  ASSERT_TRUE(file.ok()) << file.status();
  for (auto& [name, t] : file->tensors) t = t.to(torch::kFloat16);
  ASSERT_TRUE(WriteSafetensors(path, file->tensors).ok());
  absl::StatusOr<model::Llama> loaded = LoadHfLlama(dir_.path());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ExpectSameParameters(original, *loaded, [](const torch::Tensor& t) {
    return t.to(torch::kFloat16).to(torch::kFloat32);
  });
}

TEST_F(HfTest, SaveRejectsOtherDtypes) {
  absl::Status s = SaveHfLlama(RandomModel(SmallConfig()), dir_.path(), torch::kFloat16);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("not supported"));
}

TEST_F(HfTest, ScalarHeadOnlyRoundTripIsSequenceClassification) {
  model::LlamaConfig config = SmallConfig();
  config.lm_head = false;
  config.scalar_head = true;
  model::Llama original = RandomModel(config);
  ASSERT_TRUE(SaveHfLlama(original, dir_.path(), torch::kFloat32).ok());
  EXPECT_EQ(ReadJson(dir_.Join("config.json"))["architectures"][0],
            "LlamaForSequenceClassification");
  absl::StatusOr<model::Llama> loaded = LoadHfLlama(dir_.path());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_FALSE((*loaded)->config().lm_head);
  EXPECT_TRUE((*loaded)->config().scalar_head);
  ExpectSameParameters(original, *loaded);
}

TEST_F(HfTest, BothHeadsRoundTrip) {
  model::LlamaConfig config = SmallConfig();
  config.scalar_head = true;
  model::Llama original = RandomModel(config);
  ASSERT_TRUE(SaveHfLlama(original, dir_.path(), torch::kFloat32).ok());
  EXPECT_EQ(ReadJson(dir_.Join("config.json"))["rlhf_scalar_head"], true);
  absl::StatusOr<model::Llama> loaded = LoadHfLlama(dir_.path());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE((*loaded)->config().lm_head);
  EXPECT_TRUE((*loaded)->config().scalar_head);
  ExpectSameParameters(original, *loaded);
}

TEST_F(HfTest, ShardedDirectoryLoads) {
  model::Llama original = RandomModel(SmallConfig());
  ASSERT_TRUE(SaveHfLlama(original, dir_.path(), torch::kFloat32).ok());
  absl::StatusOr<SafetensorsFile> file = ReadSafetensors(dir_.Join("model.safetensors"));
  ASSERT_TRUE(file.ok()) << file.status();
  std::filesystem::remove(dir_.Join("model.safetensors"));
  NamedTensors shards[2];
  nlohmann::json index;
  for (size_t i = 0; i < file->tensors.size(); ++i) {
    const int shard = i % 2;
    shards[shard].push_back(file->tensors[i]);
    index["weight_map"][file->tensors[i].first] =
        "model-0000" + std::to_string(shard + 1) + "-of-00002.safetensors";
  }
  for (int s = 0; s < 2; ++s) {
    const std::string name = "model-0000" + std::to_string(s + 1) + "-of-00002.safetensors";
    ASSERT_TRUE(WriteSafetensors(dir_.Join(name), shards[s]).ok());
  }
  WriteFileOrDie(dir_.Join("model.safetensors.index.json"), index.dump());
  absl::StatusOr<model::Llama> loaded = LoadHfLlama(dir_.path());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ExpectSameParameters(original, *loaded);
}

TEST_F(HfTest, ReadsFixtureConfig) {
  absl::StatusOr<model::LlamaConfig> c = ReadHfConfig(ModelPath("stories260K-hf"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->dim, 64);
  EXPECT_EQ(c->hidden_dim, 172);
  EXPECT_EQ(c->n_layers, 5);
  EXPECT_EQ(c->n_heads, 8);
  EXPECT_EQ(c->n_kv_heads, 4);
  EXPECT_EQ(c->vocab_size, 512);
  EXPECT_EQ(c->max_seq_len, 512);
  EXPECT_DOUBLE_EQ(c->rms_norm_eps, 1e-5);
  EXPECT_TRUE(c->tie_embeddings);
  EXPECT_TRUE(c->lm_head);
  EXPECT_FALSE(c->scalar_head);
}

TEST_F(HfTest, MinimalConfigGetsDefaults) {
  WriteFileOrDie(dir_.Join("config.json"),
                 std::string(kMinimalConfig) + R"(, "eos_token_id": [5, 6]})");
  absl::StatusOr<model::LlamaConfig> c = ReadHfConfig(dir_.path());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->n_kv_heads, 4);
  EXPECT_EQ(c->max_seq_len, 2048);
  EXPECT_DOUBLE_EQ(c->rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c->rope_theta, 10000.0);
  EXPECT_FALSE(c->tie_embeddings);
  EXPECT_EQ(c->bos_id, 1);
  EXPECT_EQ(c->eos_id, 5);
}

TEST_F(HfTest, ConfigMissingField) {
  ExpectConfigError(R"({"hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
                        "num_attention_heads": 4})",
                    "config.json: missing field 'vocab_size'");
}

TEST_F(HfTest, ConfigNotJson) {
  ExpectConfigError("{\"hidden_size\": 32,", "config.json: not valid JSON");
}

TEST_F(HfTest, ConfigFileMissingIsNotFound) {
  absl::StatusOr<model::LlamaConfig> c = ReadHfConfig(dir_.path());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound) << c.status();
  EXPECT_THAT(c.status().message(), HasSubstr("config.json"));
}

TEST_F(HfTest, ConfigRopeScalingUnsupported) {
  ExpectConfigError(std::string(kMinimalConfig) + R"(, "rope_scaling": {"type": "linear"}})",
                    "rope_scaling");
}

TEST_F(HfTest, ConfigHeadDimMustMatch) {
  ExpectConfigError(std::string(kMinimalConfig) + R"(, "head_dim": 16})", "head_dim 16");
}

TEST_F(HfTest, ConfigClassificationNeedsOneLabel) {
  ExpectConfigError(std::string(kMinimalConfig) +
                        R"(, "architectures": ["LlamaForSequenceClassification"],
                             "id2label": {"0": "A", "1": "B"}})",
                    "2 labels");
}

TEST_F(HfTest, ConfigWrongFieldType) {
  ExpectConfigError(R"({"hidden_size": "32", "intermediate_size": 48, "num_hidden_layers": 2,
                        "num_attention_heads": 4, "vocab_size": 40})",
                    "field 'hidden_size' must be an integer");
}

TEST_F(HfTest, MissingTensor) {
  WriteEditedFixture([](NamedTensors* t) { t->pop_back(); });  // model.norm.weight
  ExpectLoadError("model.safetensors: missing tensor 'model.norm.weight'");
}

TEST_F(HfTest, ExtraTensor) {
  WriteEditedFixture(
      [](NamedTensors* t) { t->emplace_back("model.extra.weight", torch::ones(3)); });
  ExpectLoadError("model.safetensors: unexpected tensor 'model.extra.weight'");
}

TEST_F(HfTest, WrongShape) {
  WriteEditedFixture([](NamedTensors* t) { t->back().second = torch::ones({65}); });
  ExpectLoadError("tensor 'model.norm.weight' has shape [65], expected [64]");
}

TEST_F(HfTest, IntegerTensorRejected) {
  WriteEditedFixture([](NamedTensors* t) { t->back().second = torch::ones({64}, torch::kInt32); });
  ExpectLoadError("tensor 'model.norm.weight' has dtype Int");
}

TEST_F(HfTest, RotaryInvFreqIsIgnored) {
  WriteEditedFixture([](NamedTensors* t) {
    t->emplace_back("model.layers.0.self_attn.rotary_emb.inv_freq", torch::ones({4}));
  });
  absl::StatusOr<model::Llama> m = LoadHfLlama(dir_.path());
  EXPECT_TRUE(m.ok()) << m.status();
}

TEST_F(HfTest, NoWeightsFileIsNotFound) {
  WriteFileOrDie(dir_.Join("config.json"), std::string(kMinimalConfig) + "}");
  absl::StatusOr<model::Llama> m = LoadHfLlama(dir_.path());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kNotFound) << m.status();
  EXPECT_THAT(m.status().message(), HasSubstr("no model.safetensors"));
}

}  // namespace
}  // namespace rlhf::checkpoint
