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
  cmd->option_defaults()->always_capture_default();  // --help shows the defaults
  cmd->add_option("--data", a.data,
                  "JSONL (.gz allowed): {prompt, response} or HH transcripts {chosen}")
      ->required();
  AddTrainOptions(cmd, a.job, "sequences");
  cmd->add_option("--bucket-batches", a.bucket_batches,
                  "length-bucketing window in batches (1 = off)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--eval-fraction", a.eval_fraction, "share of records held out for eval loss")
      ->check(CLI::Range(0.0, 0.5));
  cmd->add_option("--eval-every", a.eval_every, "steps between held-out evaluations (0: end)");
  return cmd;
}

absl::Status RunSft(const SftArgs& a) {
  const absl::Time start = absl::Now();
  // Data-parallel ranks (torchrun variables): every rank reads the same data and trains its share
  // of each batch; rank 0 alone writes the checkpoint and the outputs.
  RLHF_ASSIGN_OR_RETURN(std::unique_ptr<dist::ProcessGroup> group,
                        JoinJobRanks("sft", absl::Seconds(a.job.dist_timeout_seconds)));
  const bool main_rank = group == nullptr || group->is_main();
  const data::ReadOptions options = ReadOptionsFrom(a.job.strict, a.job.max_bad);
  RLHF_ASSIGN_OR_RETURN(auto demos, data::ReadDemonstrations(a.data, options));
  RLHF_ASSIGN_OR_RETURN(auto tok, tokenizer::LoadTokenizer(a.job.tokenizer));
  RLHF_ASSIGN_OR_RETURN(model::Llama model,
                        InitialModel(a.job.model, tok->vocab_size(), /*scalar_head=*/false, a.job.seed));
  RLHF_ASSIGN_OR_RETURN(auto examples,
                        train::TokenizeDemonstrations(demos.items, *tok, model->config().max_seq_len,
                                                      a.data, options, &demos.report));
  PrintSkipped(demos.report);
  // Held-out split: a seeded choice of records, the same on every run with this seed.
  std::vector<train::TokenizedExample> train_set, eval_set;
  const int64_t n_eval = static_cast<int64_t>(std::floor(a.eval_fraction * examples.size()));
  const std::vector<int64_t> order =
      train::EpochOrder(static_cast<int64_t>(examples.size()), a.job.seed + 7, 0);
  for (size_t i = 0; i < order.size(); ++i) {
    (static_cast<int64_t>(i) < n_eval ? eval_set : train_set).push_back(examples[order[i]]);
  }
  if (train_set.empty()) return absl::InvalidArgumentError(a.data + ": nothing to train on");
  train::SftTrainerOptions o;
  o.optim = OptimOptionsFrom(a.job);
  o.batch_sequences = a.job.batch;
  o.micro_batch_sequences = std::min(a.job.micro_batch, a.job.batch);
  o.bucket_batches = a.bucket_batches;
  o.seed = a.job.seed;
  const int64_t per_epoch = (static_cast<int64_t>(train_set.size()) + a.job.batch - 1) / a.job.batch;
  o.optim.total_steps =
      std::max<int64_t>(1, static_cast<int64_t>(std::ceil(a.job.epochs * per_epoch)));
  std::fprintf(stderr, "sft: %zu train / %zu held-out sequences (%lld skipped), %lld steps, %s\n",
               train_set.size(), eval_set.size(), static_cast<long long>(demos.report.skipped),
               static_cast<long long>(o.optim.total_steps), model->config().DebugString().c_str());
  o.process_group = group.get();
  RLHF_ASSIGN_OR_RETURN(auto trainer, train::SftTrainer::Create(model, train_set, o));
  std::function<absl::Status(const std::string&)> save;  // empty on ranks > 0
  if (main_rank) save = [&](const std::string& dir) { return trainer->Save(dir); };
  std::error_code ec;
  std::filesystem::create_directories(a.job.out, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", a.job.out, ": ", ec.message()));
  if (a.job.resume && std::filesystem::exists(a.job.out + "/checkpoint/trainer.json")) {
    RLHF_RETURN_IF_ERROR(trainer->Restore(a.job.out + "/checkpoint"));
    std::fprintf(stderr, "resumed from %s/checkpoint at step %lld\n", a.job.out.c_str(),
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
    RLHF_ASSIGN_OR_RETURN(bool stop, CheckpointAfterStep(a.job, trainer->step(), save));
    if (stop) return absl::OkStatus();
  }
  progress.Finish(absl::StrFormat("loss %.4f", ema));
  if (a.eval_every <= 0 || trainer->step() % a.eval_every != 0) RLHF_RETURN_IF_ERROR(evaluate());
  RLHF_RETURN_IF_ERROR(SaveCheckpointAtomically(a.job.out, save));
  if (!main_rank) return absl::OkStatus();  // rank 0 writes the outputs
  trainer->model()->eval();
  RLHF_RETURN_IF_ERROR(checkpoint::SaveHfLlama(trainer->model(), a.job.out, torch::kFloat32));
  RLHF_RETURN_IF_ERROR(CopyTokenizer(a.job.tokenizer, a.job.out));
  json facts = {{"job", "sft"},
                {"data", a.data},
                {"train_sequences", train_set.size()},
                {"eval_sequences", eval_set.size()},
                {"skipped", demos.report.skipped},
                {"steps", trainer->step()},
                {"final_train_loss_ema", ema},
                {"eval", evals},
                {"seed", a.job.seed},
                {"wall_seconds", absl::ToDoubleSeconds(absl::Now() - start)}};
  RLHF_RETURN_IF_ERROR(WriteJsonFile(a.job.out + "/training.json", facts));
  std::printf("%s\n", facts.dump().c_str());
  return absl::OkStatus();
}

}  // namespace rlhf::cli
