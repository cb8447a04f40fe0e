#include "cli/eval_command.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/job_util.h"
#include "cli/progress.h"
#include "common/checkpoint/checkpoint.h"
#include "common/checkpoint/hf.h"
#include "common/model/generation.h"
#include "common/model/scoring.h"
#include "common/status/status_macros.h"
#include "common/tokenizer/tokenizer.h"
#include "common/train/reward_data.h"
#include "services/learner/prompt_pool.h"
#include "services/reward/scorers.h"

namespace rlhf::cli {

using nlohmann::json;

CLI::App* AddEvalCommand(CLI::App& app, EvalArgs& a) {
  CLI::App* cmd = app.add_subcommand(
      "eval", "Reward-model accuracy on preference pairs, next to the length baselines");
  cmd->option_defaults()->always_capture_default();  // --help shows the defaults
  cmd->add_option("--rm", a.rm, "reward model directory (from rlhf train-rm)");
  cmd->add_option("--data", a.data, "RM mode: preference JSONL (.gz allowed): HH, explicit, soft");
  cmd->add_option("--policy", a.policy, "policy mode: the policy (HF dir or .bin)");
  cmd->add_option("--prompts", a.prompts, "policy mode: {\"prompt\": ...} JSONL");
  cmd->add_option("--reference", a.reference, "policy mode: reference model for the KL");
  cmd->add_option("--samples", a.samples, "policy mode: samples printed")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--max-new-tokens", a.max_new_tokens, "policy mode: tokens per response")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--temperature", a.temperature, "policy mode: sampling temperature (> 0)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--seed", a.seed, "policy mode: sampling seed");
  cmd->add_option("--tokenizer", a.tokenizer,
                  "tokenizer (default: tokenizer.model beside --rm, else --policy)");
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
  PrintSkipped(data.report);
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

namespace {

absl::StatusOr<json> EvaluatePolicy(const EvalArgs& a, const std::string& tokenizer_path) {
  RLHF_ASSIGN_OR_RETURN(auto tok, tokenizer::LoadTokenizer(tokenizer_path));
  RLHF_ASSIGN_OR_RETURN(std::vector<std::string> prompts, learner::ReadPromptsJsonl(a.prompts));
  RLHF_ASSIGN_OR_RETURN(model::Llama policy, checkpoint::LoadModel(a.policy));
  RLHF_ASSIGN_OR_RETURN(auto engine, model::GenerationEngine::Create(policy));
  std::unique_ptr<reward::Scorer> scorer;
  if (!a.rm.empty()) {
    RLHF_ASSIGN_OR_RETURN(model::LlamaConfig rm_config, checkpoint::ReadHfConfig(a.rm));
    if (rm_config.vocab_size != policy->config().vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the reward model's vocabulary (", rm_config.vocab_size, ") is not the policy's (",
          policy->config().vocab_size, "): they must share a tokenizer"));
    }
    RLHF_ASSIGN_OR_RETURN(scorer, reward::CreateModelScorer(a.rm));
  }
  std::optional<model::Llama> reference;
  if (!a.reference.empty()) {
    RLHF_ASSIGN_OR_RETURN(reference, checkpoint::LoadModel(a.reference));
  }
  model::SamplingOptions sampling;
  sampling.temperature = a.temperature;
  sampling.max_new_tokens = a.max_new_tokens;
  sampling.seed = a.seed;
  double score_sum = 0, kl_sum = 0, length_sum = 0, eos = 0;
  json samples = json::array();
  Progress progress("eval policy", static_cast<int64_t>(prompts.size()));
  const size_t batch = 16;
  for (size_t i = 0; i < prompts.size(); i += batch) {
    const size_t end = std::min(prompts.size(), i + batch);
    std::vector<std::vector<int64_t>> ids;
    for (size_t k = i; k < end; ++k) {
      ids.emplace_back();
      ids.back().push_back(tok->bos_id());
      for (int id : tok->Encode(prompts[k])) ids.back().push_back(id);
    }
    std::vector<uint64_t> seeds;
    for (size_t k = i; k < end; ++k) seeds.push_back(a.seed + k);  // independent of batching
    RLHF_ASSIGN_OR_RETURN(auto results, engine->Generate(ids, sampling, seeds));
    std::vector<reward::ScoreInput> inputs;
    std::vector<std::vector<int64_t>> full;
    for (size_t k = i; k < end; ++k) {
      const auto& r = results[k - i];
      length_sum += static_cast<double>(r.tokens.size());
      eos += r.finish_reason == model::FinishReason::kEos ? 1 : 0;
      reward::ScoreInput in;
      in.prompt_tokens = ids[k - i];
      in.response_tokens = r.tokens;
      inputs.push_back(in);
      full.push_back(ids[k - i]);
      full.back().insert(full.back().end(), r.tokens.begin(), r.tokens.end());
    }
    std::vector<float> scores(inputs.size(), 0.0f);
    if (scorer) {
      RLHF_ASSIGN_OR_RETURN(scores, scorer->Score(inputs));
    }
    std::vector<std::vector<float>> ref_logp;
    if (reference) {
      RLHF_ASSIGN_OR_RETURN(ref_logp,
                            model::ScoreTokenLogProbs(*reference, full, a.temperature));
    }
    for (size_t k = i; k < end; ++k) {
      const auto& r = results[k - i];
      score_sum += scores[k - i];
      double kl = 0;
      if (reference) {
        const size_t start = ids[k - i].size() - 1;  // log-prob of token t+1 sits at t
        for (size_t t = 0; t < r.logprobs.size(); ++t) {
          kl += r.logprobs[t] - ref_logp[k - i][start + t];
        }
      }
      kl_sum += kl;
      if (static_cast<int64_t>(samples.size()) < a.samples) {
        std::vector<int> text_ids(r.tokens.begin(), r.tokens.end());
        samples.push_back({{"prompt", prompts[k]},
                           {"response", tok->Decode(text_ids)},
                           {"score", scores[k - i]},
                           {"kl", kl}});
      }
    }
    progress.Update(static_cast<int64_t>(end));
  }
  progress.Finish();
  const double n = static_cast<double>(prompts.size());
  json report = {{"policy", a.policy},
                 {"prompts", prompts.size()},
                 {"mean_response_tokens", length_sum / n},
                 {"eos_rate", eos / n},
                 {"samples", samples}};
  if (scorer) report["mean_score"] = score_sum / n;
  if (reference) report["mean_kl"] = kl_sum / n;
  std::fprintf(stderr, "\n%-26s %10s\n", "policy", a.policy.substr(a.policy.find_last_of('/') + 1).c_str());
  if (scorer) std::fprintf(stderr, "%-26s %10.4f\n", "mean reward-model score", score_sum / n);
  if (reference) std::fprintf(stderr, "%-26s %10.4f\n", "mean KL to reference", kl_sum / n);
  std::fprintf(stderr, "%-26s %10.1f\n%-26s %10.3f\n", "mean response tokens", length_sum / n,
               "EOS rate", eos / n);
  for (const auto& s : samples) {
    std::fprintf(stderr, "--- %s\n%s\n", s["prompt"].get<std::string>().c_str(),
                 s["response"].get<std::string>().c_str());
  }
  return report;
}

}  // namespace

absl::Status RunEval(const EvalArgs& a) {
  if (!a.policy.empty()) {
    if (a.prompts.empty()) return absl::InvalidArgumentError("--policy needs --prompts");
    const std::string tokenizer = !a.tokenizer.empty() ? a.tokenizer : TokenizerBeside(a.policy);
    if (tokenizer.empty()) return absl::InvalidArgumentError("no tokenizer beside --policy: give --tokenizer");
    RLHF_ASSIGN_OR_RETURN(json report, EvaluatePolicy(a, tokenizer));
    std::printf("%s\n", report.dump().c_str());
    if (!a.report.empty()) RLHF_RETURN_IF_ERROR(WriteJsonFile(a.report, report));
    return absl::OkStatus();
  }
  if (a.rm.empty() || a.data.empty()) {
    return absl::InvalidArgumentError("give --rm and --data (a reward model), or --policy and --prompts");
  }
  const std::string tokenizer = !a.tokenizer.empty() ? a.tokenizer : TokenizerBeside(a.rm);
  const data::ReadOptions options = ReadOptionsFrom(a.strict, a.max_bad);
  RLHF_ASSIGN_OR_RETURN(json report,
                        EvaluateRewardModel(a.rm, tokenizer, a.data, options, a.batch, a.scores));
  std::printf("%s\n", report.dump().c_str());
  if (!a.report.empty()) RLHF_RETURN_IF_ERROR(WriteJsonFile(a.report, report));
  return absl::OkStatus();
}

}  // namespace rlhf::cli
