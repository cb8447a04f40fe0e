// Generation benchmark: tokens/s of the KV-cache engine at batch 1, 16, 64 (prompt 16 tokens,
// 240 new) for stories260K and a random ~100M-parameter Llama, each beside the same decode loop
// written in Python with Debian's python3-torch (bench/python_generate.py) run in the same
// invocation, plus prefill GFLOP/s against the sgemm GFLOP/s measured here. One JSON line per
// result on stdout; progress on stderr.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/checkpoint/checkpoint.h"
#include "common/logging/logging.h"
#include "common/model/generation.h"
#include "common/runtime/runtime.h"
#include "nlohmann/json.hpp"

ABSL_FLAG(std::string, stories260k, RLHF_SOURCE_DIR "/../shared/models/stories260K.bin",
          "stories260K checkpoint; random weights of the same shape when the file is absent");
ABSL_FLAG(std::string, batches, "1,16,64", "comma-separated batch sizes");
ABSL_FLAG(std::string, models, "stories260K,llama-100M", "which models to run");
ABSL_FLAG(int, prompt_len, 16, "prompt tokens per sequence");
ABSL_FLAG(int, new_tokens, 240, "tokens generated per sequence");
ABSL_FLAG(int, threads, 0, "torch intra-op threads (0 = from CPU affinity)");
ABSL_FLAG(bool, python, true, "also run the Python baseline and print ratios");
ABSL_FLAG(std::string, python_bin, "/usr/bin/python3", "Python with Debian's python3-torch");
ABSL_FLAG(std::string, python_script, RLHF_SOURCE_DIR "/bench/python_generate.py",
          "the Python baseline");

namespace rlhf::bench {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double SgemmGflops() {
  auto a = torch::randn({1024, 1024}), b = torch::randn({1024, 1024});
  for (int i = 0; i < 3; ++i) torch::mm(a, b);
  const int reps = 20;
  auto start = Clock::now();
  for (int i = 0; i < reps; ++i) torch::mm(a, b);
  return 2.0 * 1024 * 1024 * 1024 * reps / Seconds(start) / 1e9;
}

model::LlamaConfig Config100M() {
  model::LlamaConfig c;
  c.dim = 768;
  c.hidden_dim = 2048;
  c.n_layers = 12;
  c.n_heads = 12;
  c.n_kv_heads = 12;
  c.vocab_size = 32000;
  c.max_seq_len = 1024;
  return c;
}

model::Llama LoadOrRandom(const std::string& name, std::string* weights) {
  if (name == "stories260K") {
    auto loaded = checkpoint::LoadModel(absl::GetFlag(FLAGS_stories260k));
    if (loaded.ok()) {
      *weights = "checkpoint";
      return *loaded;
    }
    LOG(WARNING) << loaded.status() << "; using random weights of the same shape";
    model::LlamaConfig c;
    c.dim = 64, c.hidden_dim = 172, c.n_layers = 5, c.n_heads = 8, c.n_kv_heads = 4;
    c.vocab_size = 512, c.max_seq_len = 512, c.tie_embeddings = true;
    *weights = "random";
    return *model::CreateRandomLlama(c, 0);
  }
  *weights = "random";
  return *model::CreateRandomLlama(Config100M(), 0);
}

std::vector<std::vector<int64_t>> Prompts(int64_t batch, int64_t len, int64_t vocab) {
  torch::manual_seed(1);
  auto t = torch::randint(3, vocab, {batch, len}, torch::kLong);
  std::vector<std::vector<int64_t>> out(batch);
  for (int64_t i = 0; i < batch; ++i) {
    out[i].assign(t[i].data_ptr<int64_t>(), t[i].data_ptr<int64_t>() + len);
  }
  return out;
}

// Runs the Python baseline and returns its tokens/s, or a negative number on failure.
double PythonTokensPerSecond(const model::LlamaConfig& c, int64_t batch) {
  const std::string cmd = absl::StrCat(
      absl::GetFlag(FLAGS_python_bin), " ", absl::GetFlag(FLAGS_python_script), " --dim ", c.dim,
      " --hidden ", c.hidden_dim, " --layers ", c.n_layers, " --heads ", c.n_heads,
      " --kv-heads ", c.n_kv_heads, " --vocab ", c.vocab_size, " --batch ", batch,
      " --prompt-len ", absl::GetFlag(FLAGS_prompt_len), " --new-tokens ",
      absl::GetFlag(FLAGS_new_tokens), " --threads ", torch::get_num_threads());
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return -1;
  std::string out;
  char buf[4096];
  while (fgets(buf, sizeof(buf), pipe) != nullptr) out += buf;
  if (pclose(pipe) != 0) {
    LOG(ERROR) << "Python baseline failed: " << cmd;
    return -1;
  }
  auto j = json::parse(out, nullptr, /*allow_exceptions=*/false);
  return j.is_object() ? j.value("tokens_per_s", -1.0) : -1.0;
}

void BenchPrefill(const std::string& name, model::GenerationEngine& engine, double sgemm) {
  const auto& c = engine.config();
  const int64_t batch = 64, len = absl::GetFlag(FLAGS_prompt_len);
  auto prompts = Prompts(batch, len, c.vocab_size);
  model::SamplingOptions opts;
  opts.max_new_tokens = 1;
  (void)engine.Generate(prompts, opts);  // warm-up
  double best = 1e30;
  for (int r = 0; r < 3; ++r) {
    auto start = Clock::now();
    (void)engine.Generate(prompts, opts);
    best = std::min(best, Seconds(start));
  }
  // Matmul FLOPs of a prefill: every token through every layer, LM head for the last tokens.
  const int64_t hd = c.head_dim();
  const int64_t per_layer =
      c.dim * (c.n_heads + 2 * c.n_kv_heads) * hd + c.n_heads * hd * c.dim + 3 * c.dim * c.hidden_dim;
  const double flops = 2.0 * (per_layer * c.n_layers * batch * len + batch * c.dim * c.vocab_size);
  const double gflops = flops / best / 1e9;
  json line = {{"bench", "prefill"}, {"model", name},          {"batch", batch},
               {"prompt_len", len},  {"seconds", best},        {"gflops", gflops},
               {"sgemm_gflops", sgemm}, {"fraction_of_sgemm", gflops / sgemm},
               {"goal_fraction", 0.6}, {"meets_goal", gflops / sgemm >= 0.6}};
  std::printf("%s\n", line.dump().c_str());
  std::fflush(stdout);
}

void BenchModel(const std::string& name, const std::vector<int64_t>& batches, double sgemm) {
  std::string weights;
  model::Llama model = LoadOrRandom(name, &weights);
  auto engine = *model::GenerationEngine::Create(model);
  const auto& c = engine->config();
  const double goal = name == "stories260K" ? 10.0 : 1.5;
  model::SamplingOptions opts;
  opts.temperature = 1.0;
  opts.stop_at_eos = false;  // every sequence generates exactly new_tokens
  opts.max_new_tokens = absl::GetFlag(FLAGS_new_tokens);
  for (int64_t batch : batches) {
    auto prompts = Prompts(batch, absl::GetFlag(FLAGS_prompt_len), c.vocab_size);
    model::SamplingOptions warm = opts;
    warm.max_new_tokens = 4;
    (void)engine->Generate(prompts, warm);
    const int reps = c.dim < 256 ? 3 : 1;
    double best = 1e30;
    for (int r = 0; r < reps; ++r) {
      auto start = Clock::now();
      auto out = engine->Generate(prompts, opts);
      best = std::min(best, Seconds(start));
      CHECK(out.ok()) << out.status();
    }
    const double tps = batch * opts.max_new_tokens / best;
    json line = {{"bench", "generate"}, {"model", name}, {"weights", weights},
                 {"params", c.NumParameters()}, {"batch", batch},
                 {"prompt_len", absl::GetFlag(FLAGS_prompt_len)},
                 {"new_tokens", opts.max_new_tokens}, {"seconds", best}, {"tokens_per_s", tps},
                 {"threads", torch::get_num_threads()}};
    if (absl::GetFlag(FLAGS_python)) {
      LOG(INFO) << "running the Python baseline for " << name << " batch " << batch;
      const double py = PythonTokensPerSecond(c, batch);
      line["python_tokens_per_s"] = py;
      if (py > 0) {
        line["ratio"] = tps / py;
        line["goal_ratio_at_batch_64"] = goal;
        if (batch == 64) line["meets_goal"] = tps / py >= goal;
      }
    }
    std::printf("%s\n", line.dump().c_str());
    std::fflush(stdout);
  }
  if (name == "llama-100M") BenchPrefill(name, *engine, sgemm);
}

}  // namespace
}  // namespace rlhf::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  rlhf::logging::Init(argv[0]);
  if (auto s = rlhf::runtime::InitTorchRuntime(absl::GetFlag(FLAGS_threads)); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 2;
  }
  torch::NoGradGuard no_grad;
  const double sgemm = rlhf::bench::SgemmGflops();
  nlohmann::json line = {{"bench", "sgemm"}, {"n", 1024}, {"gflops", sgemm},
                         {"threads", torch::get_num_threads()},
                         {"blas", rlhf::runtime::BlasDescription()}};
  std::printf("%s\n", line.dump().c_str());
  std::vector<int64_t> batches;
  for (auto b : absl::StrSplit(absl::GetFlag(FLAGS_batches), ',')) batches.push_back(std::stoll(std::string(b)));
  for (auto m : absl::StrSplit(absl::GetFlag(FLAGS_models), ',')) {
    rlhf::bench::BenchModel(std::string(m), batches, sgemm);
  }
  return 0;
}
