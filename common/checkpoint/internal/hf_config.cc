#include "common/checkpoint/internal/hf_config.h"

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status/status_macros.h"

namespace rlhf::checkpoint::internal {
namespace {

using Json = nlohmann::ordered_json;

// Typed access to the fields of one config.json object, with errors that name the file.
class Fields {
 public:
  Fields(const Json& json, const std::string& path) : json_(json), path_(path) {}

  absl::Status Error(const std::string& message) const {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": ", message));
  }

  // Returns the field, or nullptr when it is absent or null.
  const Json* Find(const std::string& key) const {
    auto it = json_.find(key);
    return it == json_.end() || it->is_null() ? nullptr : &*it;
  }

  absl::StatusOr<int64_t> RequiredInt(const std::string& key) const {
    if (Find(key) == nullptr) return Error(absl::StrCat("missing field '", key, "'"));
    return AsInt(key, *Find(key));
  }

  absl::StatusOr<int64_t> Int(const std::string& key, int64_t default_value) const {
    const Json* v = Find(key);
    return v == nullptr ? default_value : AsInt(key, *v);
  }

  // A token id; a list (e.g. several EOS ids) gives its first element.
  absl::StatusOr<int64_t> TokenId(const std::string& key, int64_t default_value) const {
    const Json* v = Find(key);
    if (v == nullptr) return default_value;
    if (v->is_array()) {
      if (v->empty()) return Error(absl::StrCat("field '", key, "' is an empty list"));
      return AsInt(key, v->front());
    }
    return AsInt(key, *v);
  }

  absl::StatusOr<double> Double(const std::string& key, double default_value) const {
    const Json* v = Find(key);
    if (v == nullptr) return default_value;
    if (!v->is_number()) return TypeError(key, "a number", *v);
    return v->get<double>();
  }

  absl::StatusOr<bool> Bool(const std::string& key, bool default_value) const {
    const Json* v = Find(key);
    if (v == nullptr) return default_value;
    if (!v->is_boolean()) return TypeError(key, "true or false", *v);
    return v->get<bool>();
  }

 private:
  absl::StatusOr<int64_t> AsInt(const std::string& key, const Json& v) const {
    if (!v.is_number_integer() ||
        (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t{INT64_MAX})) {
      return TypeError(key, "an integer", v);
    }
    return v.get<int64_t>();
  }

  absl::Status TypeError(const std::string& key, const char* expected, const Json& v) const {
    return Error(absl::StrCat("field '", key, "' must be ", expected, ", got ", v.dump()));
  }

  const Json& json_;
  const std::string& path_;
};

// Rejects config.json features that model::Llama does not implement, rather than loading a
// model that silently computes something else.
absl::Status CheckSupported(const Fields& f) {
  if (const Json* v = f.Find("model_type"); v != nullptr && *v != "llama") {
    return f.Error(absl::StrCat("model_type ", v->dump(), " is not supported (only \"llama\")"));
  }
  if (const Json* v = f.Find("rope_scaling"); v != nullptr) {
    return f.Error(absl::StrCat("rope_scaling ", v->dump(), " is not supported"));
  }
  if (const Json* v = f.Find("hidden_act"); v != nullptr && *v != "silu") {
    return f.Error(absl::StrCat("hidden_act ", v->dump(), " is not supported (only \"silu\")"));
  }
  for (const char* key : {"attention_bias", "mlp_bias"}) {
    RLHF_ASSIGN_OR_RETURN(bool bias, f.Bool(key, false));
    if (bias) return f.Error(absl::StrCat(key, " = true is not supported"));
  }
  return absl::OkStatus();
}

// Sets lm_head / scalar_head from "architectures" and "rlhf_scalar_head".
absl::Status ReadHeads(const Fields& f, model::LlamaConfig* c) {
  bool classification = false;
  if (const Json* archs = f.Find("architectures"); archs != nullptr) {
    if (!archs->is_array()) return f.Error("field 'architectures' must be a list");
    classification =
        std::find(archs->begin(), archs->end(), "LlamaForSequenceClassification") != archs->end();
  }
  if (classification) {
    int64_t num_labels = 1;
    if (const Json* v = f.Find("num_labels"); v != nullptr) {
      RLHF_ASSIGN_OR_RETURN(num_labels, f.Int("num_labels", 1));
    } else if (const Json* labels = f.Find("id2label"); labels != nullptr) {
      num_labels = static_cast<int64_t>(labels->size());
    }
    if (num_labels != 1) {
      return f.Error(absl::StrCat("LlamaForSequenceClassification with ", num_labels,
                                  " labels is not supported (a scalar head needs 1)"));
    }
    c->lm_head = false;
    c->scalar_head = true;
  } else {
    c->lm_head = true;
    RLHF_ASSIGN_OR_RETURN(c->scalar_head, f.Bool("rlhf_scalar_head", false));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<model::LlamaConfig> ParseHfConfig(const std::string& text, const std::string& path) {
  Json json;
  try {
    json = Json::parse(text);
  } catch (const Json::parse_error& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not valid JSON: ", e.what()));
  }
  if (!json.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON object"));
  }
  const Fields f(json, path);
  RLHF_RETURN_IF_ERROR(CheckSupported(f));
  model::LlamaConfig c;
  RLHF_ASSIGN_OR_RETURN(c.dim, f.RequiredInt("hidden_size"));
  RLHF_ASSIGN_OR_RETURN(c.hidden_dim, f.RequiredInt("intermediate_size"));
  RLHF_ASSIGN_OR_RETURN(c.n_layers, f.RequiredInt("num_hidden_layers"));
  RLHF_ASSIGN_OR_RETURN(c.n_heads, f.RequiredInt("num_attention_heads"));
  RLHF_ASSIGN_OR_RETURN(c.vocab_size, f.RequiredInt("vocab_size"));
  RLHF_ASSIGN_OR_RETURN(c.n_kv_heads, f.Int("num_key_value_heads", c.n_heads));
  RLHF_ASSIGN_OR_RETURN(c.max_seq_len, f.Int("max_position_embeddings", 2048));
  RLHF_ASSIGN_OR_RETURN(c.rms_norm_eps, f.Double("rms_norm_eps", 1e-6));
  RLHF_ASSIGN_OR_RETURN(c.rope_theta, f.Double("rope_theta", 10000.0));
  RLHF_ASSIGN_OR_RETURN(c.tie_embeddings, f.Bool("tie_word_embeddings", false));
  RLHF_ASSIGN_OR_RETURN(c.bos_id, f.TokenId("bos_token_id", 1));
  RLHF_ASSIGN_OR_RETURN(c.eos_id, f.TokenId("eos_token_id", 2));
  if (f.Find("head_dim") != nullptr) {
    RLHF_ASSIGN_OR_RETURN(int64_t head_dim, f.Int("head_dim", 0));
    if (c.n_heads <= 0 || head_dim * c.n_heads != c.dim) {
      return f.Error(absl::StrCat("head_dim ", head_dim, " != hidden_size ", c.dim,
                                  " / num_attention_heads ", c.n_heads, " is not supported"));
    }
  }
  RLHF_RETURN_IF_ERROR(ReadHeads(f, &c));
  if (absl::Status s = model::Validate(c); !s.ok()) return f.Error(std::string(s.message()));
  return c;
}

std::string HfConfigJson(const model::LlamaConfig& c, const std::string& torch_dtype) {
  const bool classification = c.scalar_head && !c.lm_head;
  Json j;
  j["architectures"] = {classification ? "LlamaForSequenceClassification" : "LlamaForCausalLM"};
  j["model_type"] = "llama";
  j["hidden_size"] = c.dim;
  j["intermediate_size"] = c.hidden_dim;
  j["num_hidden_layers"] = c.n_layers;
  j["num_attention_heads"] = c.n_heads;
  j["num_key_value_heads"] = c.n_kv_heads;
  j["head_dim"] = c.head_dim();
  j["vocab_size"] = c.vocab_size;
  j["max_position_embeddings"] = c.max_seq_len;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["rope_scaling"] = nullptr;
  j["hidden_act"] = "silu";
  j["attention_bias"] = false;
  j["mlp_bias"] = false;
  j["tie_word_embeddings"] = c.tie_embeddings;
  j["bos_token_id"] = c.bos_id;
  j["eos_token_id"] = c.eos_id;
  j["torch_dtype"] = torch_dtype;
  if (classification) {
    j["id2label"] = {{"0", "LABEL_0"}};
    j["label2id"] = {{"LABEL_0", 0}};
  } else if (c.scalar_head) {
    j["rlhf_scalar_head"] = true;
  }
  return j.dump(2) + "\n";
}

}  // namespace rlhf::checkpoint::internal
