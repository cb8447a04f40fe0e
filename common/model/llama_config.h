// The shape of a Llama network: what config.json (HF) or a llama2.c header describes. Kept free
// of LibTorch so that loaders, services and the CLI can pass it around cheaply.
#ifndef RLHF_COMMON_MODEL_LLAMA_CONFIG_H_
#define RLHF_COMMON_MODEL_LLAMA_CONFIG_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace rlhf::model {

struct LlamaConfig {
  /// Width of the residual stream (HF hidden_size).
  int64_t dim = 0;
  /// Width of the SwiGLU MLP (HF intermediate_size).
  int64_t hidden_dim = 0;
  /// Number of transformer blocks.
  int64_t n_layers = 0;
  /// Number of query heads.
  int64_t n_heads = 0;
  /// Number of key/value heads (grouped-query attention); query head h uses kv head
  /// h / (n_heads / n_kv_heads).
  int64_t n_kv_heads = 0;
  /// Size of the token vocabulary.
  int64_t vocab_size = 0;
  /// Longest sequence (prompt + generated tokens) the model accepts.
  int64_t max_seq_len = 0;
  /// RMSNorm epsilon.
  double rms_norm_eps = 1e-5;
  /// RoPE base.
  double rope_theta = 10000.0;
  /// Whether the LM head shares the token embedding matrix.
  bool tie_embeddings = false;
  /// Whether the network has a causal-LM head (policies, references) ...
  bool lm_head = true;
  /// ... and/or a scalar head (reward and value models; HF "score.weight", [1, dim]).
  bool scalar_head = false;
  int64_t bos_id = 1;
  int64_t eos_id = 2;

  int64_t head_dim() const { return n_heads > 0 ? dim / n_heads : 0; }
  // Number of parameters (tied embeddings counted once).
  int64_t NumParameters() const;
  std::string DebugString() const;
};

// Returns InvalidArgument naming the first field that is missing or inconsistent.
absl::Status Validate(const LlamaConfig& config);

}  // namespace rlhf::model

#endif  // RLHF_COMMON_MODEL_LLAMA_CONFIG_H_
