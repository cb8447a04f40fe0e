// PPO learner step benchmark: response tokens trained per second by learner::PpoTrainer::Step
// (policy + critic Llama, two Adam optimizers, common/rl math) on a fixed synthetic batch,
// beside the same step written in Python with Debian's python3-torch
// (bench/python_ppo_step.py) run in the same invocation with the same torch thread count.
// Goal: C++ >= 1.3x Python.
//
// The policy is a random Llama of the dims given by the flags (default: llama2.c stories15M's
// shape) or the checkpoint at --model; the critic is PpoTrainer::CriticFromPolicy. The batch is
// --batch trajectories of --prompt_len + --response_len random tokens (deterministic from
// --seed), all ending with EOS. One warm-up step, then --steps timed steps; tokens/s counts every
// response token of the batch once per PPO step (PpoStepStats::tokens).
//
// Output: one JSON line per measurement on stdout (config, each C++ step, the Python baseline),
// then a summary line with the ratio of the best steps, whether the goal is met, and the matmul
// floor of a step (its matmul FLOPs at this machine's sgemm speed), which bounds what any
// implementation over the same kernels can gain. Progress goes to stderr. Exit status 1 when a
// step fails, its statistics are not finite or the baseline fails; a missing python3 or torch
// only marks the baseline skipped.
//
// Our services' runtime::InitTorchRuntime keeps large tensors off mmap (mallopt), which a plain
// Python process does not; --python_malloc_like_cpp also runs the baseline with the same glibc
// tuning, to tell that effect apart from the rest.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "bench/bench_util.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/checkpoint/checkpoint.h"
#include "common/logging/logging.h"
#include "common/model/llama.h"
#include "common/runtime/runtime.h"
#include "nlohmann/json.hpp"
#include "services/learner/ppo_trainer.h"

ABSL_FLAG(std::string, model, "",
          "checkpoint to train (checkpoint::LoadModel, e.g. stories260K.bin); empty = random "
          "weights with the dims below");
ABSL_FLAG(int64_t, dim, 288, "width of the residual stream");
ABSL_FLAG(int64_t, hidden_dim, 768, "width of the SwiGLU MLP");
ABSL_FLAG(int64_t, layers, 6, "transformer blocks");
ABSL_FLAG(int64_t, heads, 6, "query heads");
ABSL_FLAG(int64_t, kv_heads, 6, "key/value heads");
ABSL_FLAG(int64_t, vocab, 32000, "vocabulary size");
ABSL_FLAG(int64_t, max_seq_len, 256, "context length");
ABSL_FLAG(bool, tie_embeddings, true, "LM head shares the embedding matrix");
ABSL_FLAG(int, batch, 16, "trajectories per PPO step");
ABSL_FLAG(int, minibatch, 8, "trajectories per optimizer step");
ABSL_FLAG(int, epochs, 2, "passes over the batch per PPO step");
ABSL_FLAG(int, prompt_len, 32, "prompt tokens per trajectory");
ABSL_FLAG(int, response_len, 64, "response tokens per trajectory");
ABSL_FLAG(int, steps, 3, "timed PPO steps (after one warm-up step)");
ABSL_FLAG(uint64_t, seed, 1, "seed of the weights and the synthetic batch");
ABSL_FLAG(int, threads, 0, "torch intra-op threads on both sides (0 = from CPU affinity)");
ABSL_FLAG(double, goal, 1.3, "goal for C++ tokens/s over Python tokens/s");
ABSL_FLAG(bool, python, true, "also run the Python baseline and print the ratio");
ABSL_FLAG(bool, python_malloc_like_cpp, false,
          "also run the baseline with glibc malloc tuned as runtime::InitTorchRuntime tunes ours "
          "(large tensors kept off mmap), and print that ratio too");
ABSL_FLAG(int, python_profile, 0, "ask the baseline for its top N ops of one step (0 = off)");
ABSL_FLAG(std::string, python_bin, "/usr/bin/python3", "Python with Debian's python3-torch");
ABSL_FLAG(std::string, python_script, RLHF_SOURCE_DIR "/bench/python_ppo_step.py",
          "the Python baseline");

namespace rlhf::bench {
namespace {

using nlohmann::json;


absl::StatusOr<model::Llama> MakePolicy() {
  if (!absl::GetFlag(FLAGS_model).empty()) return checkpoint::LoadModel(absl::GetFlag(FLAGS_model));
  model::LlamaConfig c;
  c.dim = absl::GetFlag(FLAGS_dim);
  c.hidden_dim = absl::GetFlag(FLAGS_hidden_dim);
  c.n_layers = absl::GetFlag(FLAGS_layers);
  c.n_heads = absl::GetFlag(FLAGS_heads);
  c.n_kv_heads = absl::GetFlag(FLAGS_kv_heads);
  c.vocab_size = absl::GetFlag(FLAGS_vocab);
  c.max_seq_len = absl::GetFlag(FLAGS_max_seq_len);
  c.tie_embeddings = absl::GetFlag(FLAGS_tie_embeddings);
  return model::CreateRandomLlama(c, absl::GetFlag(FLAGS_seed));
}

// What a rollout worker would send: BOS + random prompt, random response ending the row,
// behaviour/ref log-probs near a uniform policy's, a standard-normal score, finished by EOS.
std::vector<rlhf::v1::Trajectory> SyntheticBatch(const model::LlamaConfig& c) {
  std::mt19937_64 rng(absl::GetFlag(FLAGS_seed));
  std::uniform_int_distribution<int64_t> token(3, c.vocab_size - 1);
  std::normal_distribution<float> noise(0.0f, 0.1f), score(0.0f, 1.0f);
  const float uniform_logprob = -std::log(static_cast<float>(c.vocab_size));
  std::vector<rlhf::v1::Trajectory> batch(absl::GetFlag(FLAGS_batch));
  for (size_t i = 0; i < batch.size(); ++i) {
    rlhf::v1::Trajectory& t = batch[i];
    t.set_id(absl::StrCat("bench/", i));
    t.set_worker_id("bench");
    t.add_prompt_tokens(c.bos_id);
    for (int j = 1; j < absl::GetFlag(FLAGS_prompt_len); ++j) t.add_prompt_tokens(token(rng));
    for (int j = 0; j < absl::GetFlag(FLAGS_response_len); ++j) {
      t.add_response_tokens(token(rng));
      t.add_behaviour_logprobs(uniform_logprob + noise(rng));
      t.add_ref_logprobs(uniform_logprob + noise(rng));
    }
    t.set_reward(score(rng));
    t.set_finish_reason(rlhf::v1::FINISH_REASON_EOS);
  }
  return batch;
}

learner::PpoTrainerOptions TrainerOptions() {
  learner::PpoTrainerOptions o;  // clip 0.2, value clip 0.2, vf_coef 0.1, GAE 1 / 0.95
  o.minibatch_size = absl::GetFlag(FLAGS_minibatch);
  o.epochs = absl::GetFlag(FLAGS_epochs);
  o.learning_rate = 1e-4;
  o.critic_learning_rate = 1e-4;
  o.max_grad_norm = 1.0;
  o.seed = absl::GetFlag(FLAGS_seed);
  return o;
}

bool AllFinite(const learner::PpoStepStats& s) {
  for (double v : {s.score_mean, s.kl_mean, s.kl_coef, s.policy_loss, s.value_loss, s.clipfrac,
                   s.value_clipfrac, s.approx_kl, s.entropy, s.explained_variance}) {
    if (!std::isfinite(v)) return false;
  }
  return true;
}

json StepLine(int index, double seconds, const learner::PpoStepStats& s) {
  return {{"bench", "ppo_step"},
          {"impl", "cpp"},
          {"step", index},
          {"seconds", seconds},
          {"tokens", s.tokens},
          {"tokens_per_s", s.tokens / seconds},
          {"policy_loss", s.policy_loss},
          {"value_loss", s.value_loss},
          {"approx_kl", s.approx_kl},
          {"entropy", s.entropy},
          {"kl_mean", s.kl_mean},
          {"explained_variance", s.explained_variance}};
}

// Matmul FLOPs of one PPO step: the no-grad pass over the batch, then `epochs` passes of forward
// + backward (3x forward) over it; each pass runs the policy and critic trunks on every token
// (projections, MLP, full T x T attention products) and the LM head on the response tokens.
double MatmulFlopsPerStep(const model::LlamaConfig& c) {
  const double len = absl::GetFlag(FLAGS_prompt_len) + absl::GetFlag(FLAGS_response_len);
  const double hd = static_cast<double>(c.head_dim());
  const double per_token_layer = 2.0 * (c.dim * (c.n_heads + 2 * c.n_kv_heads) * hd +
                                        c.n_heads * hd * c.dim + 3.0 * c.dim * c.hidden_dim);
  const double attention_per_layer = 4.0 * len * len * c.n_heads * hd;
  const double trunk = c.n_layers * (len * per_token_layer + attention_per_layer);
  const double lm_head = 2.0 * absl::GetFlag(FLAGS_response_len) * c.dim * c.vocab_size;
  const double pass = absl::GetFlag(FLAGS_batch) * (2 * trunk + lm_head);
  return pass * (1 + 3 * absl::GetFlag(FLAGS_epochs));
}

// GFLOP/s of a 1024^3 sgemm on this thread count: the matmul ceiling of a step.
double SgemmGflops() {
  torch::NoGradGuard no_grad;
  auto a = torch::randn({1024, 1024}), b = torch::randn({1024, 1024});
  for (int i = 0; i < 3; ++i) torch::mm(a, b);
  const int reps = 10;
  const Clock::time_point start = Clock::now();
  for (int i = 0; i < reps; ++i) torch::mm(a, b);
  return 2.0 * 1024 * 1024 * 1024 * reps / Seconds(start) / 1e9;
}

// Runs `command` and returns its exit status (-1 when it could not be run).
int Run(const std::string& command) {
  const int status = std::system(command.c_str());
  return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// glibc tunables equal to the mallopt() calls of runtime::InitTorchRuntime (keep in sync).
constexpr char kMallocLikeCpp[] =
    "MALLOC_MMAP_THRESHOLD_=67108864 MALLOC_TRIM_THRESHOLD_=268435456 MALLOC_TOP_PAD_=67108864 ";

// Runs the Python baseline, with `env` ("NAME=value ... " or empty) before the command; returns
// its JSON line, or an object with "skipped" (missing python3 or torch: not a failure) or
// "error" (the baseline itself failed).
json PythonBaseline(const model::LlamaConfig& c, const std::string& env) {
  const std::string python = absl::GetFlag(FLAGS_python_bin);
  json out = {{"bench", "ppo_step"}, {"impl", "python"}};
  if (access(python.c_str(), X_OK) != 0) {
    out["skipped"] = absl::StrCat(python, " not found");
    return out;
  }
  if (Run(absl::StrCat(python, " -c 'import torch' >/dev/null 2>&1")) != 0) {
    out["skipped"] = "python3-torch is not installed";
    return out;
  }
  const std::string cmd = absl::StrCat(
      env, python, " ", absl::GetFlag(FLAGS_python_script), " --dim ", c.dim, " --hidden ",
      c.hidden_dim, " --layers ", c.n_layers, " --heads ", c.n_heads, " --kv-heads ", c.n_kv_heads,
      " --vocab ", c.vocab_size, " --max-seq-len ", c.max_seq_len, " --tie ",
      c.tie_embeddings ? 1 : 0, " --batch ", absl::GetFlag(FLAGS_batch), " --minibatch ",
      absl::GetFlag(FLAGS_minibatch), " --epochs ", absl::GetFlag(FLAGS_epochs), " --prompt-len ",
      absl::GetFlag(FLAGS_prompt_len), " --response-len ", absl::GetFlag(FLAGS_response_len),
      " --steps ", absl::GetFlag(FLAGS_steps), " --threads ", torch::get_num_threads(),
      " --profile ", absl::GetFlag(FLAGS_python_profile));
  LOG(INFO) << "running the Python baseline: " << cmd;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) {
    out["error"] = "popen failed";
    return out;
  }
  std::string text;
  char buf[4096];
  while (fgets(buf, sizeof(buf), pipe) != nullptr) text += buf;
  const int status = pclose(pipe);
  json parsed = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (status != 0 || !parsed.is_object() || !parsed.contains("tokens_per_s")) {
    out["error"] = absl::StrCat("baseline failed (status ", status, "): ", cmd);
    return out;
  }
  parsed["malloc"] = env.empty() ? "glibc default" : "tuned like the C++ runtime";
  return parsed;
}

int Main() {
  auto policy = MakePolicy();
  if (!policy.ok()) {
    LOG(ERROR) << policy.status();
    return 2;
  }
  const model::LlamaConfig c = (*policy)->config();
  auto critic = learner::PpoTrainer::CriticFromPolicy(*policy);
  if (!critic.ok()) {
    LOG(ERROR) << critic.status();
    return 2;
  }
  auto trainer = learner::PpoTrainer::Create(*policy, *critic, TrainerOptions());
  if (!trainer.ok()) {
    LOG(ERROR) << trainer.status();
    return 2;
  }
  const std::vector<rlhf::v1::Trajectory> batch = SyntheticBatch(c);
  Print({{"bench", "ppo_step"},
         {"config",
          {{"model", absl::GetFlag(FLAGS_model).empty() ? "random" : absl::GetFlag(FLAGS_model)},
           {"dim", c.dim},
           {"hidden_dim", c.hidden_dim},
           {"layers", c.n_layers},
           {"heads", c.n_heads},
           {"kv_heads", c.n_kv_heads},
           {"vocab", c.vocab_size},
           {"tie_embeddings", c.tie_embeddings},
           {"policy_params", c.NumParameters()},
           {"batch", absl::GetFlag(FLAGS_batch)},
           {"minibatch", absl::GetFlag(FLAGS_minibatch)},
           {"epochs", absl::GetFlag(FLAGS_epochs)},
           {"prompt_len", absl::GetFlag(FLAGS_prompt_len)},
           {"response_len", absl::GetFlag(FLAGS_response_len)},
           {"steps", absl::GetFlag(FLAGS_steps)}}},
         {"threads", torch::get_num_threads()},
         {"blas", runtime::BlasDescription()}});

  double best = 1e30, total = 0;
  int64_t tokens = 0;
  for (int i = 0; i <= absl::GetFlag(FLAGS_steps); ++i) {  // step 0 is the warm-up
    const Clock::time_point start = Clock::now();
    absl::StatusOr<learner::PpoStepStats> stats = (*trainer)->Step(batch);
    const double seconds = Seconds(start);
    if (!stats.ok() || !AllFinite(*stats)) {
      LOG(ERROR) << "step " << i << ": "
                 << (stats.ok() ? "statistics are not finite" : stats.status().ToString());
      return 1;
    }
    if (i == 0) continue;
    tokens = stats->tokens;
    best = std::min(best, seconds);
    total += seconds;
    Print(StepLine(i, seconds, *stats));
  }
  const double cpp_tps = static_cast<double>(tokens) / best;
  // How much of the best step the matmuls alone would take at sgemm speed: a step cannot be
  // faster than that in any language, so it bounds what C++ can gain over Python.
  const double gflop = MatmulFlopsPerStep(c) / 1e9, sgemm = SgemmGflops();
  json summary = {{"bench", "ppo_step"},
                  {"summary", true},
                  {"threads", torch::get_num_threads()},
                  {"matmul_gflop_per_step", gflop},
                  {"sgemm_gflops", sgemm},
                  {"matmul_floor_seconds", gflop / sgemm},
                  {"matmul_share_of_cpp_step", gflop / sgemm / best},
                  {"cpp_tokens_per_s", cpp_tps},
                  {"cpp_tokens_per_s_mean", tokens * absl::GetFlag(FLAGS_steps) / total},
                  {"goal_ratio", absl::GetFlag(FLAGS_goal)}};
  if (absl::GetFlag(FLAGS_python)) {
    json py = PythonBaseline(c, "");
    Print(py);
    if (py.contains("error")) return 1;
    if (py.contains("tokens_per_s")) {
      const double ratio = cpp_tps / py["tokens_per_s"].get<double>();
      summary["python_tokens_per_s"] = py["tokens_per_s"];
      summary["ratio"] = ratio;
      summary["meets_goal"] = ratio >= absl::GetFlag(FLAGS_goal);
      if (absl::GetFlag(FLAGS_python_malloc_like_cpp)) {
        json tuned = PythonBaseline(c, kMallocLikeCpp);
        Print(tuned);
        if (tuned.contains("error")) return 1;
        summary["python_malloc_tuned_tokens_per_s"] = tuned["tokens_per_s"];
        summary["ratio_vs_malloc_tuned"] = cpp_tps / tuned["tokens_per_s"].get<double>();
      }
    } else {
      summary["python_skipped"] = py["skipped"];
    }
  }
  Print(summary);
  return 0;
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
  if (absl::GetFlag(FLAGS_steps) < 1) {
    std::fprintf(stderr, "--steps must be >= 1\n");
    return 2;
  }
  return rlhf::bench::Main();
}
