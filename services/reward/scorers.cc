#include "services/reward/scorers.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/checkpoint/checkpoint.h"
#include "common/model/scoring.h"
#include "common/status/status_macros.h"
#include "re2/re2.h"

namespace rlhf::reward {
namespace {

using rlhf::v1::RewardRule;

class RuleScorer final : public Scorer {
 public:
  RuleScorer(std::vector<RewardRule> rules, std::vector<std::unique_ptr<RE2>> patterns)
      : rules_(std::move(rules)), patterns_(std::move(patterns)) {}

  absl::Status Check(const ScoreInput&) const override { return absl::OkStatus(); }

  absl::StatusOr<std::vector<float>> Score(const std::vector<ScoreInput>& inputs) override {
    std::vector<float> out;
    out.reserve(inputs.size());
    for (const auto& in : inputs) {
      double total = 0;
      for (size_t r = 0; r < rules_.size(); ++r) {
        total += rules_[r].weight() * Feature(r, in.response_text);
      }
      out.push_back(static_cast<float>(total));
    }
    return out;
  }

 private:
  double Feature(size_t r, const std::string& text) const {
    const RewardRule& rule = rules_[r];
    switch (rule.kind()) {
      case RewardRule::WORD_RATE: {
        std::vector<absl::string_view> words =
            absl::StrSplit(text, absl::ByAnyChar(" \t\n\r"), absl::SkipEmpty());
        if (words.empty()) return 0;
        const auto hits = std::count(words.begin(), words.end(), rule.word());
        return static_cast<double>(hits) / words.size();
      }
      case RewardRule::REGEX_MATCH:
        return RE2::PartialMatch(text, *patterns_[r]) ? 1 : 0;
      case RewardRule::LENGTH:
        return std::min(1.0, static_cast<double>(text.size()) / rule.target_length());
      case RewardRule::CONTAINS:
        return text.find(rule.word()) != std::string::npos ? 1 : 0;
      case RewardRule::TEXT_SHARE: {
        if (text.empty()) return 0;
        size_t hits = 0;
        for (size_t at = text.find(rule.word()); at != std::string::npos;
             at = text.find(rule.word(), at + rule.word().size())) {
          ++hits;
        }
        return static_cast<double>(hits * rule.word().size()) / text.size();
      }
      default:
        return 0;
    }
  }

  const std::vector<RewardRule> rules_;
  // Compiled pattern per rule (null if none). RE2 matches in time linear in the text: the
  // policy writes the text, and a backtracking engine (std::regex) can be made to take
  // exponential time, wedging the batch thread.
  const std::vector<std::unique_ptr<RE2>> patterns_;
};

absl::Status CheckRule(size_t i, const RewardRule& rule) {
  auto bad = [i](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("rules[", i, "]: ", what));
  };
  switch (rule.kind()) {
    case RewardRule::WORD_RATE:
    case RewardRule::CONTAINS:
    case RewardRule::TEXT_SHARE:
      if (rule.word().empty()) return bad("needs a non-empty 'word'");
      return absl::OkStatus();
    case RewardRule::REGEX_MATCH:
      if (rule.pattern().empty()) return bad("needs a non-empty 'pattern'");
      return absl::OkStatus();
    case RewardRule::LENGTH:
      if (rule.target_length() <= 0) return bad("needs 'target_length' > 0");
      return absl::OkStatus();
    default:
      return bad("'kind' must be one of WORD_RATE, REGEX_MATCH, LENGTH, CONTAINS, TEXT_SHARE");
  }
}

class ModelScorer final : public Scorer {
 public:
  ModelScorer(model::Llama model, float mean, float stddev)
      : model_(std::move(model)), mean_(mean), std_(stddev) {
    model_->eval();
  }

  absl::Status Check(const ScoreInput& in) const override {
    const auto& c = model_->config();
    if (in.response_tokens.empty()) return absl::InvalidArgumentError("empty response");
    const size_t len = in.prompt_tokens.size() + in.response_tokens.size();
    if (static_cast<int64_t>(len) > c.max_seq_len) {
      return absl::InvalidArgumentError(
          absl::StrCat("prompt + response is ", len, " tokens; the context is ", c.max_seq_len));
    }
    for (const auto* tokens : {&in.prompt_tokens, &in.response_tokens}) {
      for (int64_t id : *tokens) {
        if (id < 0 || id >= c.vocab_size) {
          return absl::InvalidArgumentError(
              absl::StrCat("token id ", id, " outside the vocabulary [0, ", c.vocab_size, ")"));
        }
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<float>> Score(const std::vector<ScoreInput>& inputs) override {
    std::vector<std::vector<int64_t>> seqs;
    for (const auto& in : inputs) {
      seqs.push_back(in.prompt_tokens);
      seqs.back().insert(seqs.back().end(), in.response_tokens.begin(), in.response_tokens.end());
    }
    auto values = model::ScoreValues(model_, seqs);
    if (!values.ok()) return values.status();
    std::vector<float> out;
    for (const auto& v : *values) out.push_back((v.back() - mean_) / std_);
    return out;
  }

 private:
  model::Llama model_;
  float mean_ = 0;
  float std_ = 1;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Scorer>> CreateRuleScorer(const std::vector<RewardRule>& rules) {
  if (rules.empty()) return absl::InvalidArgumentError("no reward rules given");
  std::vector<std::unique_ptr<RE2>> patterns(rules.size());
  for (size_t i = 0; i < rules.size(); ++i) {
    if (absl::Status s = CheckRule(i, rules[i]); !s.ok()) return s;
    if (rules[i].kind() != RewardRule::REGEX_MATCH) continue;
    RE2::Options options;
    options.set_log_errors(false);
    patterns[i] = std::make_unique<RE2>(rules[i].pattern(), options);
    if (!patterns[i]->ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("rules[", i, "]: bad pattern '", rules[i].pattern(),
                       "' (RE2 syntax: no backreferences or lookaround): ",
                       patterns[i]->error()));
    }
  }
  return std::make_unique<RuleScorer>(rules, std::move(patterns));
}

absl::StatusOr<std::unique_ptr<Scorer>> CreateModelScorer(const std::string& path) {
  auto model = checkpoint::LoadModel(path);
  if (!model.ok()) return model.status();
  if (!(*model)->config().scalar_head) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": a reward model needs a scalar head (score.weight)"));
  }
  // Reward normalisation written by `rlhf train-rm --normalize`: scores are (v - mean) / std.
  float mean = 0, stddev = 1;
  const std::string norm_path = path + "/reward_normalization.json";
  if (std::filesystem::is_directory(path) && std::filesystem::exists(norm_path)) {
    std::ifstream in(norm_path);
    nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object() || !j.contains("mean") || !j["mean"].is_number() ||
        !j.contains("std") || !j["std"].is_number() || !(j["std"].get<double>() > 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat(norm_path, ": expected {\"mean\": number, \"std\": number > 0}"));
    }
    mean = j["mean"].get<float>();
    stddev = j["std"].get<float>();
  }
  return std::make_unique<ModelScorer>(*model, mean, stddev);
}

absl::Status ValidateScorerConfig(const rlhf::v1::RewardConfig& config) {
  if (config.model().empty() == (config.rules_size() == 0)) {
    return absl::InvalidArgumentError("config: give exactly one of 'model' and 'rules'");
  }
  if (config.rules_size() > 0) {
    return CreateRuleScorer({config.rules().begin(), config.rules().end()}).status();
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Scorer>> CreateScorer(const rlhf::v1::RewardConfig& config) {
  RLHF_RETURN_IF_ERROR(ValidateScorerConfig(config));
  if (!config.model().empty()) return CreateModelScorer(config.model());
  return CreateRuleScorer({config.rules().begin(), config.rules().end()});
}

}  // namespace rlhf::reward
