#include "common/model/generation.h"

#include <algorithm>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/model/kernels.h"
#include "common/model/sampling.h"

namespace rlhf::model {

struct GenerationEngine::Weights {
  struct Layer {
    torch::Tensor attn_norm, wqkv, wo, ffn_norm, wgate_up, wdown;
  };
  LlamaConfig config;
  torch::Tensor embed, norm, lm_head, cos, sin;
  std::vector<Layer> layers;
};

namespace {

// The mutable state of one Generate() call.
struct DecodeState {
  int64_t batch = 0;
  std::vector<torch::Tensor> k_cache;  // per layer [B, kvh, hd, S] (see kernels.h)
  std::vector<torch::Tensor> v_cache;  // per layer [B, kvh, S, hd]
  torch::Tensor key_valid;                      // [B, S] uint8
};

}  // namespace

absl::Status CheckPrompts(const std::vector<std::vector<int64_t>>& prompts,
                          const LlamaConfig& config, const SamplingOptions& options) {
  if (prompts.empty()) return absl::InvalidArgumentError("no prompts given");
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto& p = prompts[i];
    if (p.empty()) return absl::InvalidArgumentError(absl::StrCat("prompt ", i, " is empty"));
    for (int64_t id : p) {
      if (id < 0 || id >= config.vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat("prompt ", i, " has token id ", id,
                                                       " outside vocab [0, ",
                                                       config.vocab_size, ")"));
      }
    }
    const int64_t need = static_cast<int64_t>(p.size()) + options.max_new_tokens;
    if (need > config.max_seq_len) {
      return absl::InvalidArgumentError(
          absl::StrCat("prompt ", i, " (", p.size(), " tokens) + max_new_tokens ",
                       options.max_new_tokens, " exceeds the model's max_seq_len ",
                       config.max_seq_len));
    }
  }
  return absl::OkStatus();
}

absl::Status Validate(const SamplingOptions& o) {
  if (!(o.temperature >= 0)) {
    return absl::InvalidArgumentError(absl::StrCat("temperature must be >= 0, got ", o.temperature));
  }
  if (o.top_k < 0) return absl::InvalidArgumentError(absl::StrCat("top_k must be >= 0, got ", o.top_k));
  if (!(o.top_p > 0 && o.top_p <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("top_p must be in (0, 1], got ", o.top_p));
  }
  if (o.max_new_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_new_tokens must be >= 1, got ", o.max_new_tokens));
  }
  return absl::OkStatus();
}

std::string FinishReasonName(FinishReason reason) {
  return reason == FinishReason::kEos ? "eos" : "length";
}

GenerationEngine::GenerationEngine(std::unique_ptr<Weights> weights) : w_(std::move(weights)) {}
GenerationEngine::~GenerationEngine() = default;
const LlamaConfig& GenerationEngine::config() const { return w_->config; }

absl::StatusOr<std::unique_ptr<GenerationEngine>> GenerationEngine::Create(const Llama& model) {
  const LlamaConfig& c = model->config();
  if (!c.lm_head) return absl::InvalidArgumentError("generation needs a model with an LM head");
  torch::NoGradGuard no_grad;
  auto w = std::make_unique<Weights>();
  w->config = c;
  w->embed = model->embed_tokens->weight.detach().clone();
  w->norm = model->norm->weight.detach().clone();
  w->lm_head = model->LmHeadWeight().detach().clone();
  w->cos = model->rope_cos().to(w->embed.scalar_type()).contiguous();
  w->sin = model->rope_sin().to(w->embed.scalar_type()).contiguous();
  for (const auto& m : *model->layers) {
    auto* layer = m->as<DecoderLayerImpl>();
    auto& a = layer->self_attn;
    auto& f = layer->mlp;
    w->layers.push_back(Weights::Layer{
        layer->input_layernorm->weight.detach().clone(),
        torch::cat({a->q_proj->weight, a->k_proj->weight, a->v_proj->weight}, 0).detach(),
        a->o_proj->weight.detach().clone(),
        layer->post_attention_layernorm->weight.detach().clone(),
        torch::cat({f->gate_proj->weight, f->up_proj->weight}, 0).detach(),
        f->down_proj->weight.detach().clone()});
  }
  return std::unique_ptr<GenerationEngine>(new GenerationEngine(std::move(w)));
}

namespace {

// Runs every layer on x ([B * tq, dim], modified in place) for tq new tokens per sequence at
// cache slots [slot0, slot0 + tq), writing their keys and values into the cache.
template <typename W>
void RunLayers(const W& w, torch::Tensor& x, int64_t tq, const torch::Tensor& positions,
               DecodeState& st, int64_t slot0) {
  const LlamaConfig& c = w.config;
  const int64_t hd = c.head_dim(), nq = c.n_heads * hd, nkv = c.n_kv_heads * hd;
  const int64_t n = x.size(0);
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const auto& lw = w.layers[l];
    auto h = kernels::RmsNorm(x, lw.attn_norm, c.rms_norm_eps);
    auto qkv = at::linear(h, lw.wqkv);
    kernels::RopeInplace(qkv, c.n_heads + c.n_kv_heads, hd, positions, w.cos, w.sin);
    auto qkv3 = qkv.view({st.batch, tq, -1});
    st.k_cache[l].narrow(3, slot0, tq).copy_(
        qkv3.narrow(2, nq, nkv).view({st.batch, tq, c.n_kv_heads, hd}).permute({0, 2, 3, 1}));
    st.v_cache[l].narrow(2, slot0, tq).copy_(
        qkv3.narrow(2, nq + nkv, nkv).view({st.batch, tq, c.n_kv_heads, hd}).transpose(1, 2));
    auto attn = kernels::CachedAttention(qkv3, st.k_cache[l], st.v_cache[l], st.key_valid,
                                         c.n_heads, slot0);
    x.add_(at::linear(attn.view({n, nq}), lw.wo));
    auto h2 = kernels::RmsNorm(x, lw.ffn_norm, c.rms_norm_eps);
    x.add_(at::linear(kernels::SwiGlu(at::linear(h2, lw.wgate_up)), lw.wdown));
  }
}

}  // namespace

absl::StatusOr<std::vector<GenerationResult>> GenerationEngine::Generate(
    const std::vector<std::vector<int64_t>>& prompts, const SamplingOptions& options,
    absl::Span<const uint64_t> seeds) const {
  const LlamaConfig& c = w_->config;
  if (absl::Status s = Validate(options); !s.ok()) return s;
  if (absl::Status s = CheckPrompts(prompts, c, options); !s.ok()) return s;
  if (!seeds.empty() && seeds.size() != prompts.size()) {
    return absl::InvalidArgumentError(absl::StrCat("got ", seeds.size(), " seeds for ",
                                                   prompts.size(), " prompts"));
  }
  c10::InferenceMode inference;
  const int64_t b = static_cast<int64_t>(prompts.size());
  int64_t tp = 0;
  for (const auto& p : prompts) tp = std::max<int64_t>(tp, p.size());
  const int64_t slots = tp + options.max_new_tokens;
  const auto dtype = w_->embed.scalar_type();

  // Left-padded prompt batch, key validity and per-token positions.
  DecodeState st;
  st.batch = b;
  st.key_valid = torch::zeros({b, slots}, torch::kUInt8);
  auto tokens = torch::zeros({b, tp}, torch::kLong);
  auto positions = torch::zeros({b * tp}, torch::kLong);
  std::vector<int64_t> lengths(b);
  {
    auto* tok = tokens.data_ptr<int64_t>();
    auto* pos = positions.data_ptr<int64_t>();
    auto* valid = st.key_valid.data_ptr<uint8_t>();
    for (int64_t i = 0; i < b; ++i) {
      const int64_t len = prompts[i].size(), pad = tp - len;
      lengths[i] = len;
      for (int64_t j = 0; j < len; ++j) {
        tok[i * tp + pad + j] = prompts[i][j];
        pos[i * tp + pad + j] = j;
        valid[i * slots + pad + j] = 1;
      }
    }
  }
  const int64_t hd = c.head_dim();
  for (int64_t l = 0; l < c.n_layers; ++l) {
    st.k_cache.push_back(torch::zeros({b, c.n_kv_heads, hd, slots}, dtype));
    st.v_cache.push_back(torch::zeros({b, c.n_kv_heads, slots, hd}, dtype));
  }

  // Prefill: all prompt tokens at once; logits for the last slot only.
  auto x = w_->embed.index_select(0, tokens.view({-1}));
  RunLayers(*w_, x, tp, positions, st, /*slot0=*/0);
  auto last = x.view({b, tp, c.dim}).select(1, tp - 1);
  auto logits = at::linear(kernels::RmsNorm(last, w_->norm, c.rms_norm_eps), w_->lm_head);

  TokenSampler sampler(options, b, seeds);
  std::vector<GenerationResult> results(b);
  std::vector<bool> done(b, false);
  int64_t remaining = b;
  auto step_pos = torch::empty({b}, torch::kLong);
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    auto [next, logprobs] = sampler.Sample(logits);
    const int64_t* nt = next.data_ptr<int64_t>();
    const float* lp = logprobs.data_ptr<float>();
    for (int64_t i = 0; i < b; ++i) {
      if (done[i]) continue;
      results[i].tokens.push_back(nt[i]);
      results[i].logprobs.push_back(lp[i]);
      if (options.stop_at_eos && nt[i] == c.eos_id) {
        results[i].finish_reason = FinishReason::kEos;
        done[i] = true;
        --remaining;
      }
    }
    if (remaining == 0 || step + 1 == options.max_new_tokens) break;
    const int64_t slot = tp + step;
    auto* valid = st.key_valid.data_ptr<uint8_t>();
    auto* pos = step_pos.data_ptr<int64_t>();
    for (int64_t i = 0; i < b; ++i) {
      valid[i * slots + slot] = 1;
      pos[i] = lengths[i] + step;
    }
    x = w_->embed.index_select(0, next);
    RunLayers(*w_, x, /*tq=*/1, step_pos, st, slot);
    logits = at::linear(kernels::RmsNorm(x, w_->norm, c.rms_norm_eps), w_->lm_head);
  }
  return results;
}

}  // namespace rlhf::model
