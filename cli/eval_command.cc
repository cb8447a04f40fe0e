#include "cli/eval_command.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/progress.h"
#include "common/checkpoint/hf.h"
#include "common/status/status_macros.h"
#include "common/tokenizer/tokenizer.h"
#include "common/train/reward_data.h"
#include "services/reward/scorers.h"

namespace rlhf::cli {

using nlohmann::json;

CLI::App* AddEvalCommand(CLI::App& app, EvalArgs& a) {
  CLI::App* cmd = app.add_subcommand(
      "eval", "Reward-model accuracy on preference pairs, next to the length baselines");
  cmd->add_option("--rm", a.rm, "reward model directory (from rlhf train-rm)")->required();
  cmd->add_option("--data", a.data, "preference JSONL (.gz allowed): HH, explicit or soft")
      ->required();
  cmd->add_option("--tokenizer", a.tokenizer, "tokenizer (default: <rm>/tokenizer.model)");
  cmd->add_option("--report", a.report, "write the JSON report here too");
  cmd->add_option("--scores", a.scores, "write each pair's scores here (JSONL)");
  cmd->add_flag("--strict", a.strict, "stop at the first bad record");
  cmd->add_option("--max-bad", a.max_bad, "bad records skipped before the job stops")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--batch", a.batch, "sequences per forward pass")->check(CLI::PositiveNumber);
  return cmd;
}

absl::StatusOr<json> EvaluateRewardModel(const std::string& rm_dir,
                                         const std::string& tokenizer_path,
                                         const std::string& data_path,
                                         const data::ReadOptions& options, int64_t batch,
                                         const std::string& scores_path) {
  RLHF_ASSIGN_OR_RETURN(model::LlamaConfig config, checkpoint::ReadHfConfig(rm_dir));
  RLHF_ASSIGN_OR_RETURN(std::unique_ptr<reward::Scorer> scorer,
                        reward::CreateModelScorer(rm_dir));
  RLHF_ASSIGN_OR_RETURN(auto tok, tokenizer::LoadTokenizer(tokenizer_path));
  RLHF_ASSIGN_OR_RETURN(auto data, data::ReadPreferences(data_path, options));
  std::vector<int64_t> lines;
  RLHF_ASSIGN_OR_RETURN(std::vector<train::TokenizedPair> pairs,
                        train::TokenizePairs(data.items, *tok, config.max_seq_len, data_path,
                                             options, &data.report, &lines));
  for (const auto& problem : data.report.problems) {
    std::fprintf(stderr, "skipped %s\n", problem.c_str());
  }
  // The baselines see the same pairs as the model.
  std::vector<data::PreferencePair> kept;
  {
    size_t j = 0;
    for (const auto& p : data.items) {
      if (j < lines.size() && p.line == lines[j]) {
        kept.push_back(p);
        ++j;
      }
    }
  }
  if (pairs.empty()) return absl::InvalidArgumentError(data_path + ": no pairs to evaluate");
  std::ofstream scores_out;
  if (!scores_path.empty()) {
    scores_out.open(scores_path);
    if (!scores_out) return absl::InternalError(absl::StrCat("cannot write ", scores_path));
  }
  // Batches of similar lengths (less padding); results are kept in file order.
  std::vector<size_t> order(pairs.size());
  std::iota(order.begin(), order.end(), 0);
  auto longest = [&](size_t k) { return std::max(pairs[k].chosen.size(), pairs[k].rejected.size()); };
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t x, size_t y) { return longest(x) < longest(y); });
  std::vector<float> r_chosen(pairs.size()), r_rejected(pairs.size());
  double correct = 0, margin = 0;
  Progress progress("eval", static_cast<int64_t>(pairs.size()));
  for (size_t i = 0; i < order.size(); i += batch) {
    const size_t end = std::min(order.size(), i + static_cast<size_t>(batch));
    std::vector<reward::ScoreInput> inputs;
    for (size_t k = i; k < end; ++k) {
      for (const auto* seq : {&pairs[order[k]].chosen, &pairs[order[k]].rejected}) {
        reward::ScoreInput in;
        in.prompt_tokens.assign(seq->begin(), seq->begin() + 1);  // the scorer concatenates
        in.response_tokens.assign(seq->begin() + 1, seq->end());
        inputs.push_back(std::move(in));
      }
    }
    RLHF_ASSIGN_OR_RETURN(std::vector<float> scores, scorer->Score(inputs));
    for (size_t k = i; k < end; ++k) {
      r_chosen[order[k]] = scores[2 * (k - i)];
      r_rejected[order[k]] = scores[2 * (k - i) + 1];
    }
    progress.Update(static_cast<int64_t>(end));
  }
  for (size_t k = 0; k < pairs.size(); ++k) {
    const float rc = r_chosen[k], rr = r_rejected[k];
    const bool chosen_better = pairs[k].p_chosen >= 0.5f;
    correct += (rc > rr) == chosen_better && rc != rr ? 1.0 : 0.0;
    margin += chosen_better ? rc - rr : rr - rc;
    if (scores_out.is_open()) {
      scores_out << json{{"line", lines[k]}, {"chosen", rc}, {"rejected", rr}}.dump() << "\n";
    }
  }
  progress.Finish();
  const double n = static_cast<double>(pairs.size());
  const train::LengthBaselines b = train::ComputeLengthBaselines(kept);
  const double best_length = std::max(b.longer_wins, b.shorter_wins);
  const double accuracy = correct / n;
  json report = {{"data", data_path},
                 {"records", data.report.records},
                 {"pairs", pairs.size()},
                 {"skipped", data.report.skipped},
                 {"accuracy", accuracy},
                 {"mean_margin", margin / n},
                 {"baselines",
                  {{"random", 0.5},
                   {"longer_wins", b.longer_wins},
                   {"shorter_wins", b.shorter_wins},
                   {"best_length", best_length}}},
                 {"beats_baselines", accuracy > 0.5 && accuracy > best_length}};
  std::fprintf(stderr,
               "\n%-34s %8s\n%-34s %8.4f\n%-34s %8.4f\n%-34s %8.4f\n%-34s %8.4f\n"
               "pairs: %zu (skipped %lld)\n",
               "accuracy on", data_path.substr(data_path.find_last_of('/') + 1).c_str(),
               "reward model", accuracy, "random", 0.5, "longer response wins", b.longer_wins,
               "shorter response wins", b.shorter_wins, pairs.size(),
               static_cast<long long>(data.report.skipped));
  return report;
}

absl::Status RunEval(const EvalArgs& a) {
  const std::string tokenizer =
      a.tokenizer.empty() ? (std::filesystem::path(a.rm) / "tokenizer.model").string()
                          : a.tokenizer;
  data::ReadOptions options;
  options.strict = a.strict;
  options.max_bad = a.max_bad;
  RLHF_ASSIGN_OR_RETURN(json report,
                        EvaluateRewardModel(a.rm, tokenizer, a.data, options, a.batch, a.scores));
  std::printf("%s\n", report.dump().c_str());
  if (!a.report.empty()) {
    std::ofstream out(a.report);
    out << report.dump(2) << "\n";
    if (!out.good()) return absl::InternalError(absl::StrCat("cannot write ", a.report));
  }
  return absl::OkStatus();
}

}  // namespace rlhf::cli
