// Conversion between model::LlamaConfig and the Hugging Face config.json of a Llama model
// (LlamaForCausalLM, LlamaForSequenceClassification, or our LlamaForCausalLM + scalar head
// extension "rlhf_scalar_head": true). Used by hf.cc; not part of the public API.
#ifndef RLHF_COMMON_CHECKPOINT_INTERNAL_HF_CONFIG_H_
#define RLHF_COMMON_CHECKPOINT_INTERNAL_HF_CONFIG_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/model/llama_config.h"

namespace rlhf::checkpoint::internal {

// Parses the text of a config.json; `path` only names the file in error messages. Returns
// InvalidArgument for text that is not a JSON object, a missing required field
// ("<path>: missing field 'hidden_size'"), a field of the wrong type, an unsupported feature
// (rope_scaling, biases, an activation other than silu, a model_type other than llama), or a
// configuration that fails model::Validate.
absl::StatusOr<model::LlamaConfig> ParseHfConfig(const std::string& text, const std::string& path);

// Returns config.json text for `config`; `torch_dtype` is HF's spelling ("float32",
// "bfloat16"). REQUIRES: model::Validate(config).ok().
std::string HfConfigJson(const model::LlamaConfig& config, const std::string& torch_dtype);

}  // namespace rlhf::checkpoint::internal

#endif  // RLHF_COMMON_CHECKPOINT_INTERNAL_HF_CONFIG_H_
