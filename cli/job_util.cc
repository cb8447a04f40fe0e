#include "cli/job_util.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/file/file.h"
#include "common/checkpoint/checkpoint.h"
#include "common/dist/dist_options.h"
#include "common/status/status_macros.h"

namespace rlhf::cli {

namespace fs = std::filesystem;

void AddModelOptions(CLI::App* cmd, ModelArgs& a) {
  cmd->add_option("--init", a.init, "start from this model (HF dir or .bin) instead of a fresh one");
  cmd->add_option("--config", a.config,
                  "fresh model: JSON of dims {dim, layers, heads, kv_heads, hidden_dim, "
                  "max_seq_len}, overriding the flags");
  cmd->add_option("--dim", a.dim, "fresh model: width")->check(CLI::PositiveNumber);
  cmd->add_option("--layers", a.layers, "fresh model: blocks")->check(CLI::PositiveNumber);
  cmd->add_option("--heads", a.heads, "fresh model: attention heads")->check(CLI::PositiveNumber);
  cmd->add_option("--hidden-dim", a.hidden_dim, "fresh model: MLP width (0 = ~8/3 dim)");
  cmd->add_option("--max-seq-len", a.max_seq_len, "fresh model: context in tokens")
      ->check(CLI::PositiveNumber);
}

void AddTrainOptions(CLI::App* cmd, TrainArgs& a, const std::string& unit) {
  cmd->add_option("--tokenizer", a.tokenizer, "SentencePiece .model or llama2.c tokenizer.bin")
      ->required();
  AddModelOptions(cmd, a.model);
  cmd->add_option("--out", a.out, "output directory (HF format)")->required();
  cmd->add_option("--epochs", a.epochs, "passes over the training data")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--batch", a.batch, unit + " per optimizer step")->check(CLI::PositiveNumber);
  cmd->add_option("--micro-batch", a.micro_batch, unit + " per forward pass (accumulation)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--lr", a.lr, "peak learning rate (AdamW)")->check(CLI::PositiveNumber);
  cmd->add_option("--min-lr-ratio", a.min_lr_ratio, "cosine floor as a share of --lr");
  cmd->add_option("--warmup", a.warmup, "linear warm-up steps")->check(CLI::NonNegativeNumber);
  cmd->add_option("--weight-decay", a.weight_decay, "AdamW weight decay");
  cmd->add_option("--max-grad-norm", a.max_grad_norm, "gradient clipping (<= 0: off)");
  cmd->add_option("--seed", a.seed, "model init, split and data order");
  cmd->add_option("--checkpoint-every", a.checkpoint_every, "steps between checkpoints (0: end)");
  cmd->add_flag("--resume", a.resume, "continue from <out>/checkpoint");
  cmd->add_flag("--strict", a.strict, "stop at the first bad record");
  cmd->add_option("--max-bad", a.max_bad, "bad records skipped before the job stops")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--stop-after", a.stop_after, "stop after this many steps, with a checkpoint");
  cmd->add_option("--dist-timeout", a.dist_timeout_seconds,
                  "seconds to wait for the other ranks (RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT "
                  "set: data-parallel, rank 0 writes the outputs)")
      ->check(CLI::PositiveNumber);
}

train::OptimOptions OptimOptionsFrom(const TrainArgs& a) {
  train::OptimOptions o;
  o.learning_rate = a.lr;
  o.min_lr_ratio = a.min_lr_ratio;
  o.weight_decay = a.weight_decay;
  o.warmup_steps = a.warmup;
  o.max_grad_norm = a.max_grad_norm;
  return o;
}

absl::StatusOr<model::Llama> InitialModel(const ModelArgs& a, int64_t vocab_size,
                                          bool scalar_head, uint64_t seed) {
  if (!a.init.empty()) {
    RLHF_ASSIGN_OR_RETURN(model::Llama init, checkpoint::LoadModel(a.init));
    if (!scalar_head) {
      if (!init->config().lm_head) {
        return absl::InvalidArgumentError(absl::StrCat(a.init, ": the model has no LM head"));
      }
      return init;
    }
    if (init->config().scalar_head && !init->config().lm_head) return init;
    model::LlamaConfig c = init->config();
    c.scalar_head = true;
    c.lm_head = false;
    c.tie_embeddings = false;
    RLHF_ASSIGN_OR_RETURN(model::Llama rm, model::CreateRandomLlama(c, seed));
    torch::NoGradGuard no_grad;
    auto src = init->named_parameters();
    for (auto& p : rm->named_parameters()) {
      if (const torch::Tensor* s = src.find(p.key())) p.value().copy_(*s);
    }
    return rm;
  }
  ModelArgs dims = a;
  if (!a.config.empty()) {
    std::ifstream in(a.config);
    if (!in) return absl::NotFoundError(absl::StrCat(a.config, ": cannot open"));
    const nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) return absl::InvalidArgumentError(a.config + ": not a JSON object");
    const std::pair<const char*, int64_t*> fields[] = {
        {"dim", &dims.dim},           {"layers", &dims.layers},
        {"heads", &dims.heads},       {"kv_heads", &dims.kv_heads},
        {"hidden_dim", &dims.hidden_dim}, {"max_seq_len", &dims.max_seq_len}};
    for (const auto& [key, value] : j.items()) {
      int64_t* field = nullptr;
      for (const auto& [name, ptr] : fields) {
        if (key == name) field = ptr;
      }
      if (field == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(
            a.config, ": unknown key \"", key,
            "\" (dim, layers, heads, kv_heads, hidden_dim, max_seq_len)"));
      }
      if (!value.is_number_integer() || value.get<int64_t>() < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(a.config, ": \"", key, "\" must be a non-negative integer"));
      }
      *field = value.get<int64_t>();
    }
  }
  model::LlamaConfig c;
  c.dim = dims.dim;
  c.n_layers = dims.layers;
  c.n_heads = dims.heads;
  c.n_kv_heads = dims.kv_heads > 0 ? dims.kv_heads : dims.heads;
  c.hidden_dim = dims.hidden_dim > 0 ? dims.hidden_dim : (8 * dims.dim / 3 + 15) / 16 * 16;
  c.vocab_size = vocab_size;
  c.max_seq_len = dims.max_seq_len;
  c.lm_head = !scalar_head;
  c.scalar_head = scalar_head;
  RLHF_RETURN_IF_ERROR(model::Validate(c));
  return model::CreateRandomLlama(c, seed);
}

absl::Status SaveCheckpointAtomically(
    const std::string& out, const std::function<absl::Status(const std::string&)>& save) {
  if (!save) return absl::OkStatus();
  const std::string tmp = out + "/checkpoint.tmp", dir = out + "/checkpoint";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  RLHF_RETURN_IF_ERROR(save(tmp));
  fs::remove_all(dir, ec);
  fs::rename(tmp, dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot rename ", tmp, ": ", ec.message()));
  return absl::OkStatus();
}

absl::StatusOr<bool> CheckpointAfterStep(
    const TrainArgs& a, int64_t step, const std::function<absl::Status(const std::string&)>& save) {
  const bool stop = a.stop_after > 0 && step >= a.stop_after;
  if ((a.checkpoint_every > 0 && step % a.checkpoint_every == 0) || stop) {
    RLHF_RETURN_IF_ERROR(SaveCheckpointAtomically(a.out, save));
  }
  if (stop && save) {
    std::fprintf(stderr, "\nstopped after step %lld (--stop-after); --resume continues\n",
                 static_cast<long long>(step));
  }
  return stop;
}

absl::StatusOr<std::unique_ptr<dist::ProcessGroup>> JoinJobRanks(const std::string& job,
                                                                 absl::Duration timeout) {
  RLHF_ASSIGN_OR_RETURN(dist::DistOptions options, dist::DistOptionsFromEnv());
  if (options.world_size == 1) return std::unique_ptr<dist::ProcessGroup>();
  options.timeout = timeout;
  std::fprintf(stderr, "%s: rank %d of %d, joining %s:%d\n", job.c_str(), options.rank,
               options.world_size, options.master_addr.c_str(), options.master_port);
  RLHF_ASSIGN_OR_RETURN(auto group, dist::ProcessGroup::Create(options));
  std::fprintf(stderr, "%s: rank %d joined (%s)\n", job.c_str(), group->rank(),
               group->backend().c_str());
  return group;
}

std::string TokenizerBeside(const std::string& model) {
  const fs::path dir = fs::is_directory(model) ? fs::path(model) : fs::path(model).parent_path();
  for (const char* name : {"tokenizer.model", "tokenizer.bin"}) {
    if (fs::exists(dir / name)) return (dir / name).string();
  }
  return "";
}

data::ReadOptions ReadOptionsFrom(bool strict, int64_t max_bad) {
  data::ReadOptions options;
  options.strict = strict;
  options.max_bad = max_bad;
  return options;
}

void PrintSkipped(const data::ReadReport& report) {
  for (const auto& problem : report.problems) {
    std::fprintf(stderr, "skipped %s\n", problem.c_str());
  }
}

absl::Status WriteJsonFile(const std::string& path, const nlohmann::json& j) {
  return file::WriteFileAtomically(path, j.dump(2) + "\n");
}

absl::Status CopyTokenizer(const std::string& tokenizer, const std::string& out) {
  std::error_code ec;
  const char* name = fs::path(tokenizer).extension() == ".model" ? "tokenizer.model" : "tokenizer.bin";
  fs::copy_file(tokenizer, fs::path(out) / name, fs::copy_options::overwrite_existing, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot copy ", tokenizer, ": ", ec.message()));
  return absl::OkStatus();
}

}  // namespace rlhf::cli
