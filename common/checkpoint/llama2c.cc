#include "common/checkpoint/llama2c.h"

#include <cstdint>
#include <cstdlib>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file/file.h"
#include "common/status/exception.h"
#include "common/status/status_macros.h"

namespace rlhf::checkpoint {
namespace {

using file::RandomAccessFile;
using uint128 = unsigned __int128;

constexpr uint32_t kMagic = 0x616b3432;  // "ak42"
constexpr uint64_t kLegacyHeaderBytes = 7 * 4;
constexpr uint64_t kVersion1HeaderBytes = 256;

// The arrays of a llama2.c file. Per-layer kinds hold all layers in turn.
enum class Weight {
  kEmbedding,
  kRmsAtt,
  kWq,
  kWk,
  kWv,
  kWo,
  kRmsFfn,
  kW1,
  kW2,
  kW3,
  kRmsFinal,
  kFreqCis,
  kWcls
};

// File order of each version (llama2.c export.py legacy_export / version1_export).
const std::vector<Weight>& WeightOrder(int version) {
  using W = Weight;
  static const std::vector<Weight> kVersion0 = {W::kEmbedding, W::kRmsAtt,  W::kWq,  W::kWk, W::kWv,
                                                W::kWo,        W::kRmsFfn,  W::kW1,  W::kW2, W::kW3,
                                                W::kRmsFinal,  W::kFreqCis, W::kWcls};
  static const std::vector<Weight> kVersion1 = {W::kRmsAtt, W::kRmsFfn, W::kRmsFinal, W::kEmbedding,
                                                W::kWq,     W::kWk,     W::kWv,       W::kWo,
                                                W::kW1,     W::kW2,     W::kW3,       W::kWcls};
  return version == 0 ? kVersion0 : kVersion1;
}

struct Header {
  int version = 0;
  uint64_t bytes = 0;  // header size; the float32 data follows
  int64_t dim = 0, hidden_dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, vocab_size = 0,
          seq_len = 0;
  bool shared_classifier = true;

  std::string DebugString() const {
    return absl::StrFormat(
        "version=%d dim=%d hidden_dim=%d n_layers=%d n_heads=%d n_kv_heads=%d vocab_size=%d "
        "seq_len=%d shared_classifier=%d",
        version, dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len,
        shared_classifier);
  }
};

// Number of floats of `w` in the file (all layers). Inputs are int32 values, so 128 bits
// cannot overflow.
uint128 NumFloats(Weight w, const Header& h) {
  const uint128 dim = h.dim, layers = h.n_layers, hidden = h.hidden_dim;
  const uint128 kv_dim = h.n_heads > 0 ? uint128(h.dim / h.n_heads) * h.n_kv_heads : 0;
  switch (w) {
    case Weight::kEmbedding:
      return uint128(h.vocab_size) * dim;
    case Weight::kRmsAtt:
    case Weight::kRmsFfn:
      return layers * dim;
    case Weight::kWq:
    case Weight::kWo:
      return layers * dim * dim;
    case Weight::kWk:
    case Weight::kWv:
      return layers * kv_dim * dim;
    case Weight::kW1:
    case Weight::kW2:
    case Weight::kW3:
      return layers * hidden * dim;
    case Weight::kRmsFinal:
      return dim;
    // freq_cis_real and freq_cis_imag, [seq_len, head_dim / 2] each.
    case Weight::kFreqCis:
      return h.n_heads > 0 ? uint128(h.seq_len) * (h.dim / h.n_heads) : 0;
    case Weight::kWcls:
      return h.shared_classifier ? 0 : uint128(h.vocab_size) * dim;
  }
  return 0;
}

absl::Status TooShort(const RandomAccessFile& file, uint64_t header_bytes) {
  return absl::InvalidArgumentError(absl::StrCat(file.path(), ": file is ", file.size(),
                                                 " bytes, shorter than the ", header_bytes,
                                                 "-byte llama2.c header"));
}

absl::StatusOr<Header> ReadHeader(const RandomAccessFile& file) {
  Header h;
  uint32_t magic = 0;
  if (file.size() >= 4) RLHF_RETURN_IF_ERROR(file.Read(0, 4, &magic));
  uint64_t params_offset = 0;
  if (magic == kMagic) {
    if (file.size() < kVersion1HeaderBytes) return TooShort(file, kVersion1HeaderBytes);
    int32_t version = 0;
    RLHF_RETURN_IF_ERROR(file.Read(4, 4, &version));
    if (version != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          file.path(), ": unsupported llama2.c version ", version,
          " (supported: 0, the legacy float32 export, and 1; version 2 is int8-quantized)"));
    }
    h.version = 1;
    h.bytes = kVersion1HeaderBytes;
    params_offset = 8;
  } else {
    if (file.size() < kLegacyHeaderBytes) return TooShort(file, kLegacyHeaderBytes);
    h.bytes = kLegacyHeaderBytes;
  }
  int32_t p[7];
  RLHF_RETURN_IF_ERROR(file.Read(params_offset, sizeof(p), p));
  h.dim = p[0], h.hidden_dim = p[1], h.n_layers = p[2], h.n_heads = p[3], h.n_kv_heads = p[4];
  h.vocab_size = p[5], h.seq_len = p[6];
  if (h.version == 0) {
    // Legacy: the sign of vocab_size is the shared-classifier flag.
    if (h.vocab_size == std::numeric_limits<int32_t>::min()) {  // no std::abs for it
      return absl::InvalidArgumentError(absl::StrCat(file.path(), ": llama2.c header vocab_size ",
                                                     h.vocab_size, " is out of range"));
    }
    h.shared_classifier = h.vocab_size > 0;
    h.vocab_size = std::abs(h.vocab_size);
  } else {
    uint8_t shared = 0;
    RLHF_RETURN_IF_ERROR(file.Read(params_offset + sizeof(p), 1, &shared));
    h.shared_classifier = shared != 0;
  }
  return h;
}

absl::StatusOr<model::LlamaConfig> ConfigFromHeader(const std::string& path, const Header& h) {
  model::LlamaConfig c;
  c.dim = h.dim;
  c.hidden_dim = h.hidden_dim;
  c.n_layers = h.n_layers;
  c.n_heads = h.n_heads;
  c.n_kv_heads = h.n_kv_heads;
  c.vocab_size = h.vocab_size;
  c.max_seq_len = h.seq_len;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  c.tie_embeddings = h.shared_classifier;
  if (absl::Status s = model::Validate(c); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": invalid llama2.c header (", h.DebugString(), "): ", s.message()));
  }
  return c;
}

std::string Uint128ToString(uint128 v) {
  std::string digits;
  do {
    digits.insert(digits.begin(), static_cast<char>('0' + static_cast<int>(v % 10)));
    v /= 10;
  } while (v > 0);
  return digits;
}

absl::Status CheckFileSize(const RandomAccessFile& file, const Header& h) {
  uint128 floats = 0;
  for (Weight w : WeightOrder(h.version)) floats += NumFloats(w, h);
  const uint128 expected = h.bytes + 4 * floats;
  if (expected == file.size()) return absl::OkStatus();
  const std::string detail =
      expected > file.size()
          ? "truncated"
          : absl::StrCat(static_cast<uint64_t>(file.size() - expected), " trailing bytes");
  return absl::InvalidArgumentError(absl::StrCat(
      file.path(), ": llama2.c header (", h.DebugString(), ") implies ", Uint128ToString(expected),
      " bytes but the file has ", file.size(), " bytes (", detail, ")"));
}

// `w` [rows, cols] in llama2.c's interleaved RoPE layout -> rotate-half layout (transformers'
// convert_llama_weights_to_hf.py permute).
torch::Tensor Permute(const torch::Tensor& w, int64_t heads) {
  const int64_t rows = w.size(0), cols = w.size(1);
  return w.view({heads, rows / heads / 2, 2, cols}).transpose(1, 2).reshape({rows, cols});
}

// Reads consecutive float32 arrays of the file into model parameters. Not thread-safe.
class WeightReader {
 public:
  WeightReader(const RandomAccessFile& file, uint64_t offset) : file_(file), offset_(offset) {}

  // Copies the next dst.numel() floats into `dst`, q/k rows permuted by `permute_heads` (0 =
  // no permutation).
  absl::Status ReadInto(torch::Tensor dst, int64_t permute_heads = 0) {
    torch::Tensor tmp = torch::empty(dst.sizes(), torch::kFloat32);
    const uint64_t n = static_cast<uint64_t>(tmp.numel()) * 4;
    RLHF_RETURN_IF_ERROR(file_.Read(offset_, n, tmp.data_ptr<float>()));
    offset_ += n;
    torch::NoGradGuard no_grad;
    dst.copy_(permute_heads > 0 ? Permute(tmp, permute_heads) : tmp);
    return absl::OkStatus();
  }

  void Skip(uint64_t floats) { offset_ += floats * 4; }

 private:
  const RandomAccessFile& file_;
  uint64_t offset_;
};

// The parameter of `layer` that per-layer kind `w` fills; sets *permute_heads for q and k.
torch::Tensor LayerWeight(Weight w, const Header& h, model::DecoderLayerImpl& layer,
                          int64_t* permute_heads) {
  switch (w) {
    case Weight::kRmsAtt:
      return layer.input_layernorm->weight;
    case Weight::kWq:
      *permute_heads = h.n_heads;
      return layer.self_attn->q_proj->weight;
    case Weight::kWk:
      *permute_heads = h.n_kv_heads;
      return layer.self_attn->k_proj->weight;
    case Weight::kWv:
      return layer.self_attn->v_proj->weight;
    case Weight::kWo:
      return layer.self_attn->o_proj->weight;
    case Weight::kRmsFfn:
      return layer.post_attention_layernorm->weight;
    case Weight::kW1:
      return layer.mlp->gate_proj->weight;
    case Weight::kW2:
      return layer.mlp->down_proj->weight;
    case Weight::kW3:
      return layer.mlp->up_proj->weight;
    default:
      break;
  }
  return {};  // not per-layer; ReadWeight handles those kinds itself
}

absl::Status ReadWeight(Weight w, const Header& h, WeightReader& reader, model::Llama& m) {
  if (w == Weight::kEmbedding) return reader.ReadInto(m->embed_tokens->weight);
  if (w == Weight::kRmsFinal) return reader.ReadInto(m->norm->weight);
  if (w == Weight::kWcls)
    return h.shared_classifier ? absl::OkStatus() : reader.ReadInto(m->lm_head->weight);
  if (w == Weight::kFreqCis) {
    reader.Skip(static_cast<uint64_t>(NumFloats(w, h)));
    return absl::OkStatus();
  }
  for (int64_t l = 0; l < h.n_layers; ++l) {
    int64_t permute_heads = 0;
    torch::Tensor dst = LayerWeight(w, h, *m->layers[l]->as<model::DecoderLayer>(), &permute_heads);
    RLHF_RETURN_IF_ERROR(reader.ReadInto(dst, permute_heads));
  }
  return absl::OkStatus();
}

absl::StatusOr<model::Llama> LoadImpl(const std::string& path) {
  RLHF_ASSIGN_OR_RETURN(std::unique_ptr<RandomAccessFile> file, RandomAccessFile::Open(path));
  RLHF_ASSIGN_OR_RETURN(Header header, ReadHeader(*file));
  RLHF_ASSIGN_OR_RETURN(model::LlamaConfig config, ConfigFromHeader(path, header));
  RLHF_RETURN_IF_ERROR(CheckFileSize(*file, header));
  model::Llama model(config);
  WeightReader reader(*file, header.bytes);
  for (Weight w : WeightOrder(header.version)) {
    RLHF_RETURN_IF_ERROR(ReadWeight(w, header, reader, model));
  }
  return model;
}

}  // namespace

absl::StatusOr<model::Llama> LoadLlama2c(const std::string& path) {
  return status::CatchExceptions(absl::StrCat("loading ", path), [&] { return LoadImpl(path); });
}

}  // namespace rlhf::checkpoint
