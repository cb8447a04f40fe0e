// Hugging Face Llama checkpoint directories: config.json plus model.safetensors, or shards
// listed in model.safetensors.index.json ({"weight_map": {tensor name: shard file}}).
//
// Tensor names are Hugging Face's: "model.embed_tokens.weight", "model.layers.N.self_attn.
// q_proj.weight", ..., "model.norm.weight", "lm_head.weight", and "score.weight" for a scalar
// head (LlamaForSequenceClassification, or LlamaForCausalLM with our config extension
// "rlhf_scalar_head": true). They map one to one to model::Llama parameter names by dropping
// "model.". The q/k projections are stored in HF's rotate-half RoPE layout, which is ours.
//
// All functions are thread-compatible (no shared state).
#ifndef RLHF_COMMON_CHECKPOINT_HF_H_
#define RLHF_COMMON_CHECKPOINT_HF_H_

#include <torch/torch.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model/llama.h"
#include "common/model/llama_config.h"

namespace rlhf::checkpoint {

// Reads `dir`/config.json. Required: hidden_size, intermediate_size, num_hidden_layers,
// num_attention_heads, vocab_size. Optional (default): num_key_value_heads (heads),
// max_position_embeddings (2048), rms_norm_eps (1e-6), rope_theta (10000), tie_word_embeddings
// (false), bos_token_id (1), eos_token_id (2; a list gives its first id), head_dim (must be
// hidden_size / heads). Returns NotFound when config.json is missing, InvalidArgument naming
// the file and the field for anything malformed or unsupported (e.g. rope_scaling).
absl::StatusOr<model::LlamaConfig> ReadHfConfig(const std::string& dir);

// Loads the model in `dir` as float32 on the CPU (F32, F16, BF16 tensors are converted).
// Every parameter must be present with its exact shape and no other tensor may be present
// ("rotary_emb.inv_freq" buffers are ignored; so is "lm_head.weight" when the embeddings are
// tied, in which case the LM head is the embedding). Errors name the file and the tensor:
// "missing tensor 'x'", "unexpected tensor 'x'", "tensor 'x' has shape [..], expected [..]".
// Returns NotFound when `dir` has neither model.safetensors nor model.safetensors.index.json.
absl::StatusOr<model::Llama> LoadHfLlama(const std::string& dir);

// Writes `model` to `dir` (created if needed) as config.json + model.safetensors with HF names
// ("lm_head.weight" only when not tied), tensors converted to `dtype`, which must be kFloat32
// or kBFloat16 (InvalidArgument otherwise). Each file is replaced atomically. `model` may live
// on any device; it is not modified.
absl::Status SaveHfLlama(const model::Llama& model, const std::string& dir,
                         torch::ScalarType dtype);

}  // namespace rlhf::checkpoint

#endif  // RLHF_COMMON_CHECKPOINT_HF_H_
