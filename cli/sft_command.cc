#include "cli/sft_command.h"

#include <cmath>
#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "cli/job_util.h"
#include "cli/progress.h"
#include "common/checkpoint/hf.h"
#include "common/data/preference_data.h"
#include "common/status/status_macros.h"
#include "common/tokenizer/tokenizer.h"
#include "common/train/optim.h"
#include "common/train/sft_trainer.h"

namespace rlhf::cli {

using nlohmann::json;

CLI::App* AddSftCommand(CLI::App& app, SftArgs& a) {
  CLI::App* cmd = app.add_subcommand("sft", "Supervised fine-tuning on demonstrations");
  cmd->add_option("--data", a.data,
                  "JSONL (.gz allowed): {prompt, response} or HH transcripts {chosen}")
      ->required();
  cmd->add_option("--tokenizer", a.tokenizer, "SentencePiece .model or llama2.c tokenizer.bin")
      ->required();
  AddModelOptions(cmd, a.model);
  cmd->add_option("--out", a.out, "output directory (HF format)")->required();
  cmd->add_option("--epochs", a.epochs, "passes over the training split")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--batch", a.batch, "sequences per optimizer step")->check(CLI::PositiveNumber);
  cmd->add_option("--micro-batch", a.micro_batch, "sequences per forward pass (accumulation)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--bucket-batches", a.bucket_batches,
                  "length-bucketing window in batches (1 = off)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--lr", a.lr, "peak learning rate (AdamW)")->check(CLI::PositiveNumber);
  cmd->add_option("--min-lr-ratio", a.min_lr_ratio, "cosine floor as a share of --lr");
  cmd->add_option("--warmup", a.warmup, "linear warm-up steps")->check(CLI::NonNegativeNumber);
  cmd->add_option("--weight-decay", a.weight_decay, "AdamW weight decay");
  cmd->add_option("--max-grad-norm", a.max_grad_norm, "gradient clipping (<= 0: off)");
  cmd->add_option("--eval-fraction", a.eval_fraction, "share of records held out for eval loss")
      ->check(CLI::Range(0.0, 0.5));
  cmd->add_option("--eval-every", a.eval_every, "steps between held-out evaluations (0: end)");
  cmd->add_option("--seed", a.seed, "model init, split and data order");
  cmd->add_option("--checkpoint-every", a.checkpoint_every, "steps between checkpoints (0: end)");
  cmd->add_flag("--resume", a.resume, "continue from <out>/checkpoint");
  cmd->add_flag("--strict", a.strict, "stop at the first bad record");
  cmd->add_option("--max-bad", a.max_bad, "bad records skipped before the job stops")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--stop-after", a.stop_after, "stop after this many steps, with a checkpoint");
  return cmd;
}

absl::Status RunSft(const SftArgs& a) {
  const absl::Time start = absl::Now();
  data::ReadOptions options;
  options.strict = a.strict;
  options.max_bad = a.max_bad;
  RLHF_ASSIGN_OR_RETURN(auto demos, data::ReadDemonstrations(a.data, options));
  RLHF_ASSIGN_OR_RETURN(auto tok, tokenizer::LoadTokenizer(a.tokenizer));
  RLHF_ASSIGN_OR_RETURN(model::Llama model,
                        InitialModel(a.model, tok->vocab_size(), /*scalar_head=*/false, a.seed));
  RLHF_ASSIGN_OR_RETURN(auto examples,
                        train::TokenizeDemonstrations(demos.items, *tok, model->config().max_seq_len,
                                                      a.data, options, &demos.report));
  for (const auto& problem : demos.report.problems) {
    std::fprintf(stderr, "skipped %s\n", problem.c_str());
  }
  // Held-out split: a seeded choice of records, the same on every run with this seed.
  std::vector<train::TokenizedExample> train_set, eval_set;
  const int64_t n_eval = static_cast<int64_t>(std::floor(a.eval_fraction * examples.size()));
  const std::vector<int64_t> order =
      train::EpochOrder(static_cast<int64_t>(examples.size()), a.seed + 7, 0);
  for (size_t i = 0; i < order.size(); ++i) {
    (static_cast<int64_t>(i) < n_eval ? eval_set : train_set).push_back(examples[order[i]]);
  }
  if (train_set.empty()) return absl::InvalidArgumentError(a.data + ": nothing to train on");
  train::SftTrainerOptions o;
  o.optim.learning_rate = a.lr;
  o.optim.min_lr_ratio = a.min_lr_ratio;
  o.optim.weight_decay = a.weight_decay;
  o.optim.warmup_steps = a.warmup;
  o.optim.max_grad_norm = a.max_grad_norm;
  o.batch_sequences = a.batch;
  o.micro_batch_sequences = std::min(a.micro_batch, a.batch);
  o.bucket_batches = a.bucket_batches;
  o.seed = a.seed;
  const int64_t per_epoch = (static_cast<int64_t>(train_set.size()) + a.batch - 1) / a.batch;
  o.optim.total_steps =
      std::max<int64_t>(1, static_cast<int64_t>(std::ceil(a.epochs * per_epoch)));
  std::fprintf(stderr, "sft: %zu train / %zu held-out sequences (%lld skipped), %lld steps, %s\n",
               train_set.size(), eval_set.size(), static_cast<long long>(demos.report.skipped),
               static_cast<long long>(o.optim.total_steps), model->config().DebugString().c_str());
  RLHF_ASSIGN_OR_RETURN(auto trainer, train::SftTrainer::Create(model, train_set, o));
  std::error_code ec;
  std::filesystem::create_directories(a.out, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", a.out, ": ", ec.message()));
  if (a.resume && std::filesystem::exists(a.out + "/checkpoint/trainer.json")) {
    RLHF_RETURN_IF_ERROR(trainer->Restore(a.out + "/checkpoint"));
    std::fprintf(stderr, "resumed from %s/checkpoint at step %lld\n", a.out.c_str(),
                 static_cast<long long>(trainer->step()));
  }
  json evals = json::array();
  auto evaluate = [&]() -> absl::Status {
    if (eval_set.empty()) return absl::OkStatus();
    RLHF_ASSIGN_OR_RETURN(double loss, trainer->EvalLoss(eval_set));
    evals.push_back({{"step", trainer->step()}, {"eval_loss", loss}});
    std::fprintf(stderr, "\nstep %lld: held-out loss %.4f\n",
                 static_cast<long long>(trainer->step()), loss);
    return absl::OkStatus();
  };
  RLHF_RETURN_IF_ERROR(evaluate());
  Progress progress("sft", o.optim.total_steps);
  double ema = -1;
  while (trainer->step() < o.optim.total_steps) {
    RLHF_ASSIGN_OR_RETURN(train::SftStepStats s, trainer->Step());
    ema = ema < 0 ? s.loss : 0.9 * ema + 0.1 * s.loss;
    progress.Update(trainer->step(),
                    absl::StrFormat("loss %.4f lr %.2e tokens %d", ema, s.learning_rate, s.tokens));
    if (a.eval_every > 0 && trainer->step() % a.eval_every == 0) RLHF_RETURN_IF_ERROR(evaluate());
    const bool stop = a.stop_after > 0 && trainer->step() >= a.stop_after;
    if ((a.checkpoint_every > 0 && trainer->step() % a.checkpoint_every == 0) || stop) {
      RLHF_RETURN_IF_ERROR(SaveCheckpointAtomically(
          a.out, [&](const std::string& dir) { return trainer->Save(dir); }));
    }
    if (stop) {
      progress.Finish();
      std::fprintf(stderr, "stopped after step %lld (--stop-after); --resume continues\n",
                   static_cast<long long>(trainer->step()));
      return absl::OkStatus();
    }
  }
  progress.Finish(absl::StrFormat("loss %.4f", ema));
  if (a.eval_every <= 0 || trainer->step() % a.eval_every != 0) RLHF_RETURN_IF_ERROR(evaluate());
  RLHF_RETURN_IF_ERROR(SaveCheckpointAtomically(
      a.out, [&](const std::string& dir) { return trainer->Save(dir); }));
  trainer->model()->eval();
  RLHF_RETURN_IF_ERROR(checkpoint::SaveHfLlama(trainer->model(), a.out, torch::kFloat32));
  RLHF_RETURN_IF_ERROR(CopyTokenizer(a.tokenizer, a.out));
  json facts = {{"job", "sft"},
                {"data", a.data},
                {"train_sequences", train_set.size()},
                {"eval_sequences", eval_set.size()},
                {"skipped", demos.report.skipped},
                {"steps", trainer->step()},
                {"final_train_loss_ema", ema},
                {"eval", evals},
                {"seed", a.seed},
                {"wall_seconds", absl::ToDoubleSeconds(absl::Now() - start)}};
  RLHF_RETURN_IF_ERROR(WriteJsonFile(a.out + "/training.json", facts));
  std::printf("%s\n", facts.dump().c_str());
  return absl::OkStatus();
}

}  // namespace rlhf::cli
