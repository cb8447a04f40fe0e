// One LibTorch implementation of the Llama architecture: RMSNorm, RoPE (HF rotate-half layout,
// theta from config), SwiGLU MLP, grouped-query attention, optional tied embeddings, a causal-LM
// head and a scalar head on the same trunk. Parameter names follow Hugging Face's
// LlamaForCausalLM without the "model." prefix (embed_tokens.weight, layers.0.self_attn.q_proj
// .weight, ..., norm.weight, lm_head.weight, score.weight), so checkpoints map one to one.
//
// This is the autograd path (training, teacher-forced scoring). Generation uses the KV-cache
// engine in generation.h, which reads the same parameters.
//
// Not thread-safe for concurrent mutation; concurrent inference under NoGradGuard is fine.
#ifndef RLHF_COMMON_MODEL_LLAMA_H_
#define RLHF_COMMON_MODEL_LLAMA_H_

#include <torch/torch.h>

#include "absl/status/statusor.h"
#include "common/model/llama_config.h"

namespace rlhf::model {

class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;
  double eps;
};
TORCH_MODULE(RMSNorm);

class AttentionImpl : public torch::nn::Module {
 public:
  explicit AttentionImpl(const LlamaConfig& config);
  // x: [B, T, dim]; cos/sin: [B, 1, T, head_dim]; mask: additive [B, 1, T, T]. Returns [B, T, dim].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& mask);
  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  int64_t n_heads, n_kv_heads, head_dim;
};
TORCH_MODULE(Attention);

class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(int64_t dim, int64_t hidden_dim);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(Mlp);

class DecoderLayerImpl : public torch::nn::Module {
 public:
  explicit DecoderLayerImpl(const LlamaConfig& config);
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& mask);
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  Attention self_attn{nullptr};
  Mlp mlp{nullptr};
};
TORCH_MODULE(DecoderLayer);

// Output of the trunk for a padded batch.
struct TrunkOutput {
  torch::Tensor hidden;  // [B, T, dim], after the final norm
};

class LlamaImpl : public torch::nn::Module {
 public:
  // REQUIRES: Validate(config).ok().
  explicit LlamaImpl(const LlamaConfig& config);

  // tokens: [B, T] int64. attention_mask: [B, T] (1 = real token, 0 = pad) or undefined for
  // "all real". Position ids count real tokens only, so left or right padding give each
  // sequence the same results at its real positions. Returns the final hidden states.
  torch::Tensor Trunk(const torch::Tensor& tokens, const torch::Tensor& attention_mask = {});
  // LM logits [B, T, vocab]. REQUIRES: config().lm_head.
  torch::Tensor Logits(const torch::Tensor& hidden);
  // Scalar-head values [B, T]. REQUIRES: config().scalar_head.
  torch::Tensor Values(const torch::Tensor& hidden);
  // Convenience: Logits(Trunk(tokens, mask)).
  torch::Tensor forward(const torch::Tensor& tokens, const torch::Tensor& attention_mask = {});

  const LlamaConfig& config() const { return config_; }
  // The LM head matrix [vocab, dim] (the embedding when tied).
  torch::Tensor LmHeadWeight() const;
  // RoPE tables for positions 0..max_seq_len-1: cos, sin of shape [max_seq_len, head_dim]
  // (rotate-half layout: frequency i at columns i and i + head_dim/2). Buffers, float64 unless
  // the module was converted with to(dtype).
  const torch::Tensor& rope_cos() const { return rope_cos_; }
  const torch::Tensor& rope_sin() const { return rope_sin_; }

  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
  torch::nn::Linear lm_head{nullptr};  // null when tied or absent
  torch::nn::Linear score{nullptr};    // null when no scalar head

 private:
  LlamaConfig config_;
  torch::Tensor rope_cos_, rope_sin_;
};
TORCH_MODULE(Llama);

// Builds a randomly initialised model (normal(0, 0.02) weights, ones for norms) with `seed`.
absl::StatusOr<Llama> CreateRandomLlama(const LlamaConfig& config, uint64_t seed);

// Position ids for a padded batch: the number of real tokens before each slot (0 for pads
// before the first real token). mask: [B, T] with 1 = real.
torch::Tensor PositionIdsFromMask(const torch::Tensor& mask);

}  // namespace rlhf::model

#endif  // RLHF_COMMON_MODEL_LLAMA_H_
