#include "common/model/llama_config.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace rlhf::model {

int64_t LlamaConfig::NumParameters() const {
  const int64_t hd = head_dim();
  const int64_t attn = dim * n_heads * hd * 2 + dim * n_kv_heads * hd * 2;
  const int64_t mlp = 3 * dim * hidden_dim;
  int64_t n = vocab_size * dim + n_layers * (attn + mlp + 2 * dim) + dim;
  if (lm_head && !tie_embeddings) n += vocab_size * dim;
  if (scalar_head) n += dim;
  return n;
}

std::string LlamaConfig::DebugString() const {
  return absl::StrFormat(
      "dim=%d hidden_dim=%d n_layers=%d n_heads=%d n_kv_heads=%d vocab=%d max_seq_len=%d "
      "eps=%g rope_theta=%g tied=%d lm_head=%d scalar_head=%d params=%d",
      dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, max_seq_len, rms_norm_eps,
      rope_theta, tie_embeddings, lm_head, scalar_head, NumParameters());
}

absl::Status Validate(const LlamaConfig& c) {
  auto positive = [](const char* name, int64_t v) -> absl::Status {
    if (v <= 0) return absl::InvalidArgumentError(absl::StrCat(name, " must be > 0, got ", v));
    return absl::OkStatus();
  };
  for (auto [name, v] : {std::pair<const char*, int64_t>{"dim", c.dim},
                         {"hidden_dim", c.hidden_dim},
                         {"n_layers", c.n_layers},
                         {"n_heads", c.n_heads},
                         {"n_kv_heads", c.n_kv_heads},
                         {"vocab_size", c.vocab_size},
                         {"max_seq_len", c.max_seq_len}}) {
    if (absl::Status s = positive(name, v); !s.ok()) return s;
  }
  if (c.dim % c.n_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("dim ", c.dim, " is not a multiple of n_heads ", c.n_heads));
  }
  if (c.head_dim() % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("head_dim ", c.head_dim(), " must be even for RoPE"));
  }
  if (c.head_dim() > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat("head_dim ", c.head_dim(), " is larger than the supported 256"));
  }
  // The RoPE tables hold max_seq_len x head_dim angles (cos and sin, float64): a header that
  // claims 2^27 positions would take gigabytes before any weight is read.
  constexpr int64_t kMaxRopeEntries = int64_t{1} << 25;
  if (c.max_seq_len > kMaxRopeEntries / c.head_dim()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_seq_len ", c.max_seq_len, " x head_dim ", c.head_dim(),
        " is more than the supported 2^25 RoPE entries (max_seq_len up to ",
        kMaxRopeEntries / c.head_dim(), " at this head_dim)"));
  }
  if (c.n_heads % c.n_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("n_heads ", c.n_heads,
                                                   " is not a multiple of n_kv_heads ",
                                                   c.n_kv_heads));
  }
  if (!(c.rms_norm_eps > 0) || !(c.rope_theta > 0)) {
    return absl::InvalidArgumentError("rms_norm_eps and rope_theta must be > 0");
  }
  if (!c.lm_head && !c.scalar_head) {
    return absl::InvalidArgumentError("a model needs an LM head, a scalar head, or both");
  }
  if (c.bos_id < 0 || c.bos_id >= c.vocab_size || c.eos_id < 0 || c.eos_id >= c.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat("bos_id ", c.bos_id, " / eos_id ", c.eos_id,
                                                   " out of vocab range ", c.vocab_size));
  }
  return absl::OkStatus();
}

}  // namespace rlhf::model
