#include "cli/train_rm_command.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "cli/eval_command.h"
#include "cli/job_util.h"
#include "cli/progress.h"
#include "common/checkpoint/hf.h"
#include "common/data/preference_data.h"
#include "common/status/status_macros.h"
#include "common/tokenizer/tokenizer.h"
#include "common/train/reward_data.h"
#include "common/train/reward_trainer.h"

namespace rlhf::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

}  // namespace

CLI::App* AddTrainRmCommand(CLI::App& app, TrainRmArgs& a) {
  CLI::App* cmd = app.add_subcommand("train-rm", "Train a reward model on preference pairs");
  cmd->option_defaults()->always_capture_default();  // --help shows the defaults
  cmd->add_option("--train", a.train, "preference JSONL (.gz allowed)")->required();
  cmd->add_option("--test", a.test, "preference JSONL evaluated at the end");
  cmd->add_option("--exclude", a.exclude, "drop training pairs that also occur in this file");
  cmd->add_flag("--normalize", a.normalize, "scale scores to mean 0 / std 1 on the training set");
  AddTrainOptions(cmd, a.job, "pairs");
  return cmd;
}

absl::Status RunTrainRm(const TrainRmArgs& a) {
  const absl::Time start = absl::Now();
  // Data-parallel ranks (torchrun variables): every rank reads the same data and trains its share
  // of each batch; rank 0 alone writes the checkpoint and the outputs.
  RLHF_ASSIGN_OR_RETURN(std::unique_ptr<dist::ProcessGroup> group,
                        JoinJobRanks("train-rm", absl::Seconds(a.job.dist_timeout_seconds)));
  const bool main_rank = group == nullptr || group->is_main();
  const data::ReadOptions options = ReadOptionsFrom(a.job.strict, a.job.max_bad);
  RLHF_ASSIGN_OR_RETURN(auto train, data::ReadPreferences(a.train, options));
  if (!a.exclude.empty()) {
    RLHF_ASSIGN_OR_RETURN(auto exclude, data::ReadPreferences(a.exclude, options));
    const int64_t dropped = train::ExcludePairs(exclude.items, &train.items);
    std::fprintf(stderr, "excluded %lld pairs also in %s\n", static_cast<long long>(dropped),
                 a.exclude.c_str());
  }
  RLHF_ASSIGN_OR_RETURN(auto tok, tokenizer::LoadTokenizer(a.job.tokenizer));
  RLHF_ASSIGN_OR_RETURN(model::Llama model,
                        InitialModel(a.job.model, tok->vocab_size(), /*scalar_head=*/true, a.job.seed));
  RLHF_ASSIGN_OR_RETURN(std::vector<train::TokenizedPair> pairs,
                        train::TokenizePairs(train.items, *tok, model->config().max_seq_len,
                                             a.train, options, &train.report));
  PrintSkipped(train.report);
  if (pairs.empty()) return absl::InvalidArgumentError(a.train + ": no pairs to train on");
  train::RewardTrainerOptions o;
  o.optim = OptimOptionsFrom(a.job);
  o.batch_pairs = a.job.batch;
  o.micro_batch_pairs = std::min(a.job.micro_batch, a.job.batch);
  o.seed = a.job.seed;
  o.optim.total_steps = std::max<int64_t>(
      1, static_cast<int64_t>(std::ceil(a.job.epochs * static_cast<double>(pairs.size()) /
                                        static_cast<double>(a.job.batch))));
  std::fprintf(stderr, "train-rm: %zu pairs (%lld skipped), %lld steps of %lld pairs, model %s\n",
               pairs.size(), static_cast<long long>(train.report.skipped),
               static_cast<long long>(o.optim.total_steps), static_cast<long long>(o.batch_pairs),
               model->config().DebugString().c_str());
  const int64_t num_pairs = static_cast<int64_t>(pairs.size());
  o.process_group = group.get();
  RLHF_ASSIGN_OR_RETURN(auto trainer,
                        train::RewardTrainer::Create(model, std::move(pairs), o));
  std::function<absl::Status(const std::string&)> save;  // empty on ranks > 0
  if (main_rank) save = [&](const std::string& dir) { return trainer->Save(dir); };
  std::error_code ec;
  fs::create_directories(a.job.out, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", a.job.out, ": ", ec.message()));
  if (a.job.resume && fs::exists(a.job.out + "/checkpoint/trainer.json")) {
    RLHF_RETURN_IF_ERROR(trainer->Restore(a.job.out + "/checkpoint"));
    std::fprintf(stderr, "resumed from %s/checkpoint at step %lld\n", a.job.out.c_str(),
                 static_cast<long long>(trainer->step()));
  }
  Progress progress("train-rm", o.optim.total_steps);
  double ema_loss = -1, ema_acc = 0;
  while (trainer->step() < o.optim.total_steps) {
    RLHF_ASSIGN_OR_RETURN(train::RewardStepStats s, trainer->Step());
    ema_loss = ema_loss < 0 ? s.loss : 0.9 * ema_loss + 0.1 * s.loss;
    ema_acc = trainer->step() == 1 ? s.accuracy : 0.9 * ema_acc + 0.1 * s.accuracy;
    progress.Update(trainer->step(), absl::StrFormat("loss %.4f acc %.3f lr %.2e epoch %.2f",
                                                     ema_loss, ema_acc, s.learning_rate,
                                                     trainer->epoch()));
    RLHF_ASSIGN_OR_RETURN(bool stop, CheckpointAfterStep(a.job, trainer->step(), save));
    if (stop) return absl::OkStatus();
  }
  progress.Finish(absl::StrFormat("loss %.4f acc %.3f", ema_loss, ema_acc));
  RLHF_RETURN_IF_ERROR(SaveCheckpointAtomically(a.job.out, save));
  if (!main_rank) return absl::OkStatus();  // rank 0 writes the outputs
  model::Llama& trained = trainer->model();
  trained->eval();
  RLHF_RETURN_IF_ERROR(checkpoint::SaveHfLlama(trained, a.job.out, torch::kFloat32));
  RLHF_RETURN_IF_ERROR(CopyTokenizer(a.job.tokenizer, a.job.out));
  json facts = {{"job", "train-rm"},         {"train", a.train},
                {"pairs", num_pairs},         {"skipped", train.report.skipped},
                {"steps", trainer->step()},   {"batch_pairs", a.job.batch},
                {"learning_rate", a.job.lr},      {"epochs", a.job.epochs},
                {"seed", a.job.seed},             {"final_loss_ema", ema_loss},
                {"final_accuracy_ema", ema_acc}};
  std::error_code rm_ec;
  fs::remove(a.job.out + "/reward_normalization.json", rm_ec);
  if (a.normalize) {
    // Mean and std of the scores of every training sequence (chosen and rejected).
    std::vector<std::vector<int64_t>> seqs;
    for (const auto& p : trainer->pairs()) {
      seqs.push_back(p.chosen);
      seqs.push_back(p.rejected);
    }
    RLHF_ASSIGN_OR_RETURN(std::vector<float> scores, train::ScoreSequences(trained, seqs));
    double mean = 0, sq = 0;
    for (float s : scores) mean += s;
    mean /= static_cast<double>(scores.size());
    for (float s : scores) sq += (s - mean) * (s - mean);
    const double stddev = std::max(1e-6, std::sqrt(sq / static_cast<double>(scores.size())));
    RLHF_RETURN_IF_ERROR(WriteJsonFile(a.job.out + "/reward_normalization.json",
                                   {{"mean", mean}, {"std", stddev}}));
    facts["normalization"] = {{"mean", mean}, {"std", stddev}};
  }
  facts["train_seconds"] = absl::ToDoubleSeconds(absl::Now() - start);
  if (!a.test.empty()) {
    RLHF_ASSIGN_OR_RETURN(json report,
                          EvaluateRewardModel(a.job.out, a.job.tokenizer, a.test, options, 16));
    facts["test"] = report;
    std::printf("%s\n", report.dump().c_str());
  }
  facts["wall_seconds"] = absl::ToDoubleSeconds(absl::Now() - start);
  RLHF_RETURN_IF_ERROR(WriteJsonFile(a.job.out + "/training.json", facts));
  std::fprintf(stderr, "wrote %s (%.0f s)\n", a.job.out.c_str(), facts["wall_seconds"].get<double>());
  return absl::OkStatus();
}

}  // namespace rlhf::cli
