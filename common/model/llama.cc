#include "common/model/llama.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace rlhf::model {
namespace {

torch::Tensor RotateHalf(const torch::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// x: [B, H, T, hd]; cos/sin: [B, 1, T, hd].
torch::Tensor ApplyRope(const torch::Tensor& x, const torch::Tensor& cos,
                        const torch::Tensor& sin) {
  return x * cos + RotateHalf(x) * sin;
}

}  // namespace

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_in) : eps(eps_in) {
  weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  return x * torch::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + eps) * weight;
}

AttentionImpl::AttentionImpl(const LlamaConfig& c)
    : n_heads(c.n_heads), n_kv_heads(c.n_kv_heads), head_dim(c.head_dim()) {
  auto linear = [](int64_t in, int64_t out) {
    return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false));
  };
  q_proj = register_module("q_proj", linear(c.dim, n_heads * head_dim));
  k_proj = register_module("k_proj", linear(c.dim, n_kv_heads * head_dim));
  v_proj = register_module("v_proj", linear(c.dim, n_kv_heads * head_dim));
  o_proj = register_module("o_proj", linear(n_heads * head_dim, c.dim));
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& cos,
                                     const torch::Tensor& sin, const torch::Tensor& mask) {
  const int64_t b = x.size(0), t = x.size(1);
  auto q = q_proj(x).view({b, t, n_heads, head_dim}).transpose(1, 2);
  auto k = k_proj(x).view({b, t, n_kv_heads, head_dim}).transpose(1, 2);
  auto v = v_proj(x).view({b, t, n_kv_heads, head_dim}).transpose(1, 2);
  q = ApplyRope(q, cos, sin);
  k = ApplyRope(k, cos, sin);
  const int64_t groups = n_heads / n_kv_heads;
  if (groups > 1) {
    k = k.repeat_interleave(groups, /*dim=*/1);
    v = v.repeat_interleave(groups, /*dim=*/1);
  }
  auto scores = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(head_dim));
  auto probs = torch::softmax(scores + mask, -1);
  auto out = torch::matmul(probs, v).transpose(1, 2).reshape({b, t, n_heads * head_dim});
  return o_proj(out);
}

MlpImpl::MlpImpl(int64_t dim, int64_t hidden_dim) {
  auto linear = [](int64_t in, int64_t out) {
    return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false));
  };
  gate_proj = register_module("gate_proj", linear(dim, hidden_dim));
  up_proj = register_module("up_proj", linear(dim, hidden_dim));
  down_proj = register_module("down_proj", linear(hidden_dim, dim));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  return down_proj(torch::silu(gate_proj(x)) * up_proj(x));
}

DecoderLayerImpl::DecoderLayerImpl(const LlamaConfig& c) {
  input_layernorm = register_module("input_layernorm", RMSNorm(c.dim, c.rms_norm_eps));
  self_attn = register_module("self_attn", Attention(c));
  post_attention_layernorm =
      register_module("post_attention_layernorm", RMSNorm(c.dim, c.rms_norm_eps));
  mlp = register_module("mlp", Mlp(c.dim, c.hidden_dim));
}

torch::Tensor DecoderLayerImpl::forward(torch::Tensor x, const torch::Tensor& cos,
                                        const torch::Tensor& sin, const torch::Tensor& mask) {
  x = x + self_attn(input_layernorm(x), cos, sin, mask);
  return x + mlp(post_attention_layernorm(x));
}

LlamaImpl::LlamaImpl(const LlamaConfig& c) : config_(c) {
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(c.vocab_size, c.dim));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.n_layers; ++i) layers->push_back(DecoderLayer(c));
  norm = register_module("norm", RMSNorm(c.dim, c.rms_norm_eps));
  if (c.lm_head && !c.tie_embeddings) {
    lm_head = register_module(
        "lm_head", torch::nn::Linear(torch::nn::LinearOptions(c.dim, c.vocab_size).bias(false)));
  }
  if (c.scalar_head) {
    score = register_module("score",
                            torch::nn::Linear(torch::nn::LinearOptions(c.dim, 1).bias(false)));
  }
  // RoPE tables, kept in float64 (cast to the activations' dtype when used) so that a float64
  // model gets float64-exact angles.
  const int64_t hd = c.head_dim(), half = hd / 2;
  auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  auto inv_freq = torch::pow(c.rope_theta, -torch::arange(0, half, opts) * 2.0 / hd);
  auto angles = torch::outer(torch::arange(0, c.max_seq_len, opts), inv_freq);
  angles = torch::cat({angles, angles}, -1);
  rope_cos_ = register_buffer("rope_cos", angles.cos());
  rope_sin_ = register_buffer("rope_sin", angles.sin());
}

torch::Tensor PositionIdsFromMask(const torch::Tensor& mask) {
  auto m = mask.to(torch::kLong);
  return (m.cumsum(1) - 1).clamp_min(0);
}

torch::Tensor LlamaImpl::Trunk(const torch::Tensor& tokens, const torch::Tensor& attention_mask) {
  const int64_t b = tokens.size(0), t = tokens.size(1);
  TORCH_CHECK(t <= config_.max_seq_len, "sequence length ", t, " exceeds max_seq_len ",
              config_.max_seq_len);
  auto mask = attention_mask.defined()
                  ? attention_mask.to(torch::kBool)
                  : torch::ones({b, t}, tokens.options().dtype(torch::kBool));
  auto positions = PositionIdsFromMask(mask);
  // Module::to() converts buffers in place (set_data), so these members follow the dtype.
  auto x = embed_tokens(tokens);
  auto cos = rope_cos_.index_select(0, positions.flatten()).view({b, 1, t, -1}).to(x.dtype());
  auto sin = rope_sin_.index_select(0, positions.flatten()).view({b, 1, t, -1}).to(x.dtype());
  // Allowed: causal, key is real; a query may always see itself (keeps pad rows finite).
  auto causal = torch::ones({t, t}, mask.options()).tril();
  auto allowed = causal.unsqueeze(0) & mask.unsqueeze(1);
  allowed = allowed | torch::eye(t, mask.options()).unsqueeze(0);
  auto additive = torch::zeros({b, 1, t, t}, x.options())
                      .masked_fill(allowed.logical_not().unsqueeze(1),
                                   -std::numeric_limits<double>::infinity());
  for (const auto& layer : *layers) x = layer->as<DecoderLayer>()->forward(x, cos, sin, additive);
  return norm(x);
}

torch::Tensor LlamaImpl::LmHeadWeight() const {
  TORCH_CHECK(config_.lm_head, "model has no LM head");
  return lm_head ? lm_head->weight : embed_tokens->weight;
}

torch::Tensor LlamaImpl::Logits(const torch::Tensor& hidden) {
  return torch::nn::functional::linear(hidden, LmHeadWeight());
}

torch::Tensor LlamaImpl::Values(const torch::Tensor& hidden) {
  TORCH_CHECK(score, "model has no scalar head");
  return score(hidden).squeeze(-1);
}

torch::Tensor LlamaImpl::forward(const torch::Tensor& tokens,
                                 const torch::Tensor& attention_mask) {
  return Logits(Trunk(tokens, attention_mask));
}

absl::StatusOr<Llama> CreateRandomLlama(const LlamaConfig& config, uint64_t seed) {
  if (absl::Status s = Validate(config); !s.ok()) return s;
  torch::manual_seed(seed);
  Llama model(config);
  torch::NoGradGuard no_grad;
  for (auto& p : model->named_parameters()) {
    if (p.key().find("norm") != std::string::npos) {
      p.value().fill_(1.0);
    } else {
      p.value().normal_(0.0, 0.02);
    }
  }
  return model;
}

}  // namespace rlhf::model
