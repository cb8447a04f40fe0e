#include "common/checkpoint/test_util.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/testing/shared_data.h"

namespace rlhf::checkpoint::testing {
namespace {

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "test_util: %s\n", message.c_str());
  std::abort();
}

void AppendFloats(std::string* out, const torch::Tensor& t) {
  torch::Tensor c = t.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  out->append(reinterpret_cast<const char*>(c.data_ptr<float>()), c.numel() * sizeof(float));
}

template <typename T>
void AppendPod(std::string* out, T value) {
  out->append(reinterpret_cast<const char*>(&value), sizeof(value));
}

// Inverse of llama2c.cc's Permute: rotate-half rows -> llama2.c interleaved rows.
torch::Tensor Unpermute(const torch::Tensor& w, int64_t heads) {
  const int64_t rows = w.size(0), cols = w.size(1);
  return w.view({heads, 2, rows / heads / 2, cols}).transpose(1, 2).reshape({rows, cols});
}

}  // namespace

TempDir::TempDir() {
  char templ[] = "/tmp/rlhf_checkpoint_test_XXXXXX";
  if (::mkdtemp(templ) == nullptr) Die(std::string("mkdtemp: ") + std::strerror(errno));
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::Join(const std::string& name) const { return path_ + "/" + name; }

std::string ModelPath(const std::string& name) {
  return ::rlhf::testing::SharedPath("models/" + name);
}

std::string ReadFileOrDie(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Die("cannot read " + path);
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

void WriteFileOrDie(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  if (!out) Die("cannot write " + path);
}

std::string SafetensorsBytes(const std::string& header, size_t data_bytes) {
  std::string bytes;
  AppendPod<uint64_t>(&bytes, header.size());
  bytes += header;
  bytes.append(data_bytes, '\0');
  return bytes;
}

model::LlamaConfig SmallConfig() {
  model::LlamaConfig c;
  c.dim = 32;
  c.hidden_dim = 48;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.vocab_size = 40;
  c.max_seq_len = 16;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  return c;
}

void WriteLlama2cOrDie(const model::Llama& m, int version, const std::string& path) {
  const model::LlamaConfig& c = m->config();
  const bool shared = c.tie_embeddings;
  std::string out;
  if (version == 1) {
    AppendPod<uint32_t>(&out, 0x616b3432);
    AppendPod<int32_t>(&out, 1);
  }
  for (int64_t v : {c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads,
                    version == 0 && !shared ? -c.vocab_size : c.vocab_size, c.max_seq_len}) {
    AppendPod<int32_t>(&out, static_cast<int32_t>(v));
  }
  if (version == 1) {
    AppendPod<uint8_t>(&out, shared ? 1 : 0);
    out.resize(256, '\0');
  }
  std::vector<model::DecoderLayerImpl*> layers;
  for (const auto& l : *m->layers) layers.push_back(l->as<model::DecoderLayer>());
  auto per_layer = [&](auto get) {
    for (auto* l : layers) AppendFloats(&out, get(l));
  };
  auto rms_att = [&] { per_layer([](auto* l) { return l->input_layernorm->weight; }); };
  auto rms_ffn = [&] { per_layer([](auto* l) { return l->post_attention_layernorm->weight; }); };
  auto matrices = [&] {
    per_layer([&](auto* l) { return Unpermute(l->self_attn->q_proj->weight, c.n_heads); });
    per_layer([&](auto* l) { return Unpermute(l->self_attn->k_proj->weight, c.n_kv_heads); });
    per_layer([](auto* l) { return l->self_attn->v_proj->weight; });
    per_layer([](auto* l) { return l->self_attn->o_proj->weight; });
  };
  auto mlp = [&] {
    per_layer([](auto* l) { return l->mlp->gate_proj->weight; });
    per_layer([](auto* l) { return l->mlp->down_proj->weight; });
    per_layer([](auto* l) { return l->mlp->up_proj->weight; });
  };
  if (version == 0) {
    AppendFloats(&out, m->embed_tokens->weight);
    rms_att();
    matrices();
    rms_ffn();
    mlp();
    AppendFloats(&out, m->norm->weight);
    // Legacy freq_cis_real / freq_cis_imag: any values, the loader skips them.
    AppendFloats(&out, torch::full({c.max_seq_len, c.head_dim() / 2}, 0.5f));
    AppendFloats(&out, torch::full({c.max_seq_len, c.head_dim() / 2}, -0.5f));
  } else {
    rms_att();
    rms_ffn();
    AppendFloats(&out, m->norm->weight);
    AppendFloats(&out, m->embed_tokens->weight);
    matrices();
    mlp();
  }
  if (!shared) AppendFloats(&out, m->lm_head->weight);
  WriteFileOrDie(path, out);
}

double MaxAbsDiff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

}  // namespace rlhf::checkpoint::testing
