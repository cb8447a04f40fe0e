#include "cli/cai_command.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file/file.h"
#include "common/cai/cai.h"
#include "common/grpc/server.h"
#include "common/grpc/status_util.h"
#include "common/rl/preference.h"
#include "common/status/status_macros.h"
#include "common/tokenizer/tokenizer.h"
#include "rlhf/v1/services.grpc.pb.h"
#include "services/learner/prompt_pool.h"

namespace rlhf::cli {
namespace {

using nlohmann::json;

// The rollout service's Generate, in batches: the first turn of each completion.
class Generator {
 public:
  explicit Generator(const CaiGenerationArgs& a)
      : args_(a), stub_(rlhf::v1::Rollout::NewStub(grpc_util::CreateChannel(a.rollout))) {}

  // `tag` distinguishes the calls of one job (initial, critique r, ...) in the seeds.
  absl::StatusOr<std::vector<std::string>> Complete(const std::vector<std::string>& prompts,
                                                    uint64_t tag) {
    std::vector<std::string> out;
    for (size_t begin = 0; begin < prompts.size(); begin += args_.batch) {
      const size_t end = std::min(prompts.size(), begin + static_cast<size_t>(args_.batch));
      rlhf::v1::GenerateRequest request;
      for (size_t i = begin; i < end; ++i) request.add_prompts()->set_text(prompts[i]);
      auto* s = request.mutable_sampling();
      s->set_temperature(static_cast<float>(args_.temperature));
      s->set_max_new_tokens(static_cast<int32_t>(args_.max_new_tokens));
      s->set_seed(args_.seed * 1000003 + tag * 7919 + begin);
      rlhf::v1::GenerateResponse response;
      ::grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
      ::grpc::Status status = stub_->Generate(&ctx, request, &response);
      if (!status.ok()) {
        return absl::Status(grpc_util::FromGrpcStatus(status).code(),
                            absl::StrCat("Generate at ", args_.rollout, " (prompts ", begin, "..",
                                         end - 1, "): ", status.error_message()));
      }
      for (const auto& g : response.generations()) out.push_back(cai::FirstTurn(g.text()));
      calls_ += 1;
    }
    return out;
  }
  int64_t calls() const { return calls_; }

 private:
  const CaiGenerationArgs args_;
  std::unique_ptr<rlhf::v1::Rollout::Stub> stub_;
  int64_t calls_ = 0;
};

absl::Status WriteJsonl(const std::string& path, const std::vector<json>& records) {
  std::string text;
  for (const json& r : records) absl::StrAppend(&text, r.dump(), "\n");
  return file::WriteFileAtomically(path, text);
}

void AddGenerationOptions(CLI::App* cmd, CaiGenerationArgs& a, bool required) {
  auto* rollout =
      cmd->add_option("--rollout", a.rollout, "host:port of a rollout service (Generate)");
  if (required) rollout->required();
  cmd->add_option("--max-new-tokens", a.max_new_tokens, "tokens per generated turn")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--temperature", a.temperature, "sampling temperature (0 = greedy)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", a.seed, "seed of the principle draws and the sampling");
  cmd->add_option("--batch", a.batch, "prompts per RPC")->check(CLI::PositiveNumber);
}

}  // namespace

CLI::App* AddCaiReviseCommand(CLI::App& app, CaiReviseArgs& a) {
  CLI::App* cmd =
      app.add_subcommand("cai-revise",
                         "SL-CAI data: responses to red-team prompts, critiqued and revised under "
                         "principles of a constitution (through a rollout service)");
  cmd->option_defaults()->always_capture_default();
  cmd->add_option("--prompts", a.prompts, "JSONL of {\"prompt\": ...}")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--constitution", a.constitution,
                  "JSON list of {name, critique_request, revision_request}")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--few-shot", a.few_shot,
                  "JSON list of example strings prefixed to every "
                  "critique prompt")
      ->check(CLI::ExistingFile);
  cmd->add_option("--rounds", a.rounds, "critique/revision rounds")->check(CLI::PositiveNumber);
  cmd->add_option("--helpful", a.helpful, "JSONL of {prompt, response} demonstrations to mix in")
      ->check(CLI::ExistingFile);
  cmd->add_option("--helpful-fraction", a.helpful_fraction,
                  "share of the output that is helpful demonstrations (with --helpful)")
      ->check(CLI::Range(0.0, 0.95));
  cmd->add_option("--out", a.out, "output JSONL (for rlhf sft)")->required();
  AddGenerationOptions(cmd, a.gen, /*required=*/true);
  return cmd;
}

absl::Status RunCaiRevise(const CaiReviseArgs& a) {
  RLHF_ASSIGN_OR_RETURN(std::vector<std::string> prompts, learner::ReadPromptsJsonl(a.prompts));
  RLHF_ASSIGN_OR_RETURN(std::vector<cai::Principle> constitution,
                        cai::LoadConstitution(a.constitution));
  RLHF_ASSIGN_OR_RETURN(std::string few_shot, cai::LoadFewShotPrefix(a.few_shot));
  std::vector<json> helpful;
  if (!a.helpful.empty()) {
    RLHF_ASSIGN_OR_RETURN(helpful, learner::ReadPromptRecordsJsonl(a.helpful));
    for (size_t i = 0; i < helpful.size(); ++i) {
      if (!helpful[i].contains("response") || !helpful[i]["response"].is_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat(a.helpful, " record ", i + 1, ": expected {\"prompt\", \"response\"}"));
      }
    }
  }
  const size_t n = prompts.size();
  std::fprintf(stderr, "cai-revise: %zu prompts, %lld round(s), %zu principles\n", n,
               static_cast<long long>(a.rounds), constitution.size());
  std::mt19937_64 rng(a.gen.seed);
  Generator gen(a.gen);
  std::vector<std::string> conversations(n);
  for (size_t i = 0; i < n; ++i) conversations[i] = cai::Conversation(prompts[i]);
  RLHF_ASSIGN_OR_RETURN(std::vector<std::string> responses, gen.Complete(conversations, 0));
  std::vector<json> out(n);
  for (size_t i = 0; i < n; ++i) {
    out[i] = {
        {"prompt", conversations[i]}, {"initial_response", responses[i]}, {"steps", json::array()}};
  }
  for (int64_t round = 0; round < a.rounds; ++round) {
    std::vector<const cai::Principle*> drawn(n);
    std::vector<std::string> critique_prompts(n);
    for (size_t i = 0; i < n; ++i) {
      drawn[i] = &constitution[rng() % constitution.size()];
      critique_prompts[i] =
          cai::CritiquePrompt(few_shot, conversations[i], responses[i], *drawn[i]);
    }
    RLHF_ASSIGN_OR_RETURN(std::vector<std::string> critiques,
                          gen.Complete(critique_prompts, 2 * round + 1));
    std::vector<std::string> revision_prompts(n);
    for (size_t i = 0; i < n; ++i) {
      revision_prompts[i] = cai::RevisionPrompt(critique_prompts[i], critiques[i], *drawn[i]);
    }
    RLHF_ASSIGN_OR_RETURN(std::vector<std::string> revisions,
                          gen.Complete(revision_prompts, 2 * round + 2));
    for (size_t i = 0; i < n; ++i) {
      out[i]["steps"].push_back(
          {{"principle", drawn[i]->name}, {"critique", critiques[i]}, {"revision", revisions[i]}});
      responses[i] = revisions[i];
    }
    std::fprintf(stderr, "cai-revise: round %lld/%lld done\n", static_cast<long long>(round + 1),
                 static_cast<long long>(a.rounds));
  }
  for (size_t i = 0; i < n; ++i) out[i]["response"] = responses[i];
  // Helpful demonstrations: `helpful_fraction` of the output, drawn in order (cycling), then
  // everything shuffled with the seed.
  size_t mixed = 0;
  if (!helpful.empty()) {
    mixed = static_cast<size_t>(
        std::llround(a.helpful_fraction / (1 - a.helpful_fraction) * static_cast<double>(n)));
    for (size_t k = 0; k < mixed; ++k) {
      json h = helpful[k % helpful.size()];
      h["source"] = "helpful";
      out.push_back(std::move(h));
    }
    std::shuffle(out.begin(), out.end(), rng);
  }
  RLHF_RETURN_IF_ERROR(WriteJsonl(a.out, out));
  std::fprintf(stderr,
               "cai-revise: wrote %zu revisions and %zu helpful records to %s (%lld "
               "Generate calls)\n",
               n, mixed, a.out.c_str(), static_cast<long long>(gen.calls()));
  return absl::OkStatus();
}

CLI::App* AddCaiLabelCommand(CLI::App& app, CaiLabelArgs& a) {
  CLI::App* cmd = app.add_subcommand(
      "cai-label",
      "RL-CAI data: soft preference labels from a feedback model's multiple-choice "
      "answers under principles (through the rollout and reference services)");
  cmd->option_defaults()->always_capture_default();
  cmd->add_option("--prompts", a.prompts,
                  "JSONL of {\"prompt\"} (two responses are sampled) or {\"prompt\", \"a\", \"b\"}")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--principles", a.principles, "JSON list of {name, question}")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--few-shot", a.few_shot,
                  "JSON list of example strings prefixed to every "
                  "feedback prompt")
      ->check(CLI::ExistingFile);
  cmd->add_option("--cot", a.cot,
                  "chain of thought: JSON list of {\"prompt\"} examples with a "
                  "\"{}\" for the principle; a rationale is generated first")
      ->check(CLI::ExistingFile);
  cmd->add_option("--ensemble", a.ensemble, "principles per pair (their softmaxes averaged)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--both-orders", a.both_orders,
               "also ask each question with the responses swapped (A <-> B); the swapped "
               "answer's softmax is averaged in with the options exchanged");
  cmd->add_option("--clamp-low", a.clamp_low,
                  "clamp p_a to [low, high] (default 0/1, 0.4 with --cot)");
  cmd->add_option("--clamp-high", a.clamp_high, "(default 1, 0.6 with --cot)");
  cmd->add_option("--reference", a.reference,
                  "host:port of a reference service serving the "
                  "feedback model (LogProbs)")
      ->required();
  cmd->add_option("--tokenizer", a.tokenizer, "the feedback model's tokenizer")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--out", a.out, "output JSONL of soft labels (for rlhf train-rm)")->required();
  AddGenerationOptions(cmd, a.gen, /*required=*/false);
  return cmd;
}

namespace {

// The reference service's LogProbs of " (A)" and " (B)" after each prompt: per prompt, the sum
// of the option's token log-probs. The option's tokens are those of prompt + option past the
// longest common prefix with the prompt's own tokens (so a merge across the boundary is scored
// as the model would read the text).
class OptionScorer {
 public:
  OptionScorer(const std::string& address, const tokenizer::Tokenizer* tok, int64_t batch)
      : address_(address),
        tok_(tok),
        batch_(batch),
        stub_(rlhf::v1::Reference::NewStub(grpc_util::CreateChannel(address))) {}

  absl::StatusOr<std::vector<std::pair<double, double>>> Score(
      const std::vector<std::string>& prompts) {
    std::vector<rlhf::v1::TokenSequence> sequences;
    for (const std::string& p : prompts) {
      std::vector<int64_t> prefix = {tok_->bos_id()};
      for (int id : tok_->Encode(p)) prefix.push_back(id);
      for (const char* option : {cai::kOptionA, cai::kOptionB}) {
        std::vector<int64_t> full = {tok_->bos_id()};
        for (int id : tok_->Encode(p + option)) full.push_back(id);
        size_t start = 0;
        while (start < prefix.size() && start < full.size() && prefix[start] == full[start]) {
          ++start;
        }
        if (start >= full.size()) return absl::InternalError("an option without tokens");
        rlhf::v1::TokenSequence s;
        for (int64_t id : full) s.add_tokens(id);
        s.set_start(static_cast<int32_t>(std::max<size_t>(1, start)));
        sequences.push_back(std::move(s));
      }
    }
    std::vector<double> sums;
    for (size_t begin = 0; begin < sequences.size(); begin += batch_) {
      const size_t end = std::min(sequences.size(), begin + static_cast<size_t>(batch_));
      rlhf::v1::LogProbsRequest request;
      for (size_t i = begin; i < end; ++i) *request.add_sequences() = sequences[i];
      rlhf::v1::LogProbsResponse response;
      ::grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
      ::grpc::Status status = stub_->LogProbs(&ctx, request, &response);
      if (!status.ok()) {
        return absl::Status(grpc_util::FromGrpcStatus(status).code(),
                            absl::StrCat("LogProbs at ", address_, ": ", status.error_message()));
      }
      for (const auto& r : response.results()) {
        double sum = 0;  // the option's log-probability (rl::OptionLogprob, unpadded)
        for (float lp : r.logprobs()) sum += lp;
        sums.push_back(sum);
      }
    }
    std::vector<std::pair<double, double>> out;
    for (size_t i = 0; i + 1 < sums.size(); i += 2) out.emplace_back(sums[i], sums[i + 1]);
    return out;
  }

 private:
  const std::string address_;
  const tokenizer::Tokenizer* const tok_;
  const int64_t batch_;
  std::unique_ptr<rlhf::v1::Reference::Stub> stub_;
};

}  // namespace

absl::Status RunCaiLabel(const CaiLabelArgs& a) {
  RLHF_ASSIGN_OR_RETURN(std::vector<json> records, learner::ReadPromptRecordsJsonl(a.prompts));
  RLHF_ASSIGN_OR_RETURN(std::vector<cai::FeedbackPrinciple> principles,
                        cai::LoadFeedbackPrinciples(a.principles));
  RLHF_ASSIGN_OR_RETURN(std::string few_shot, cai::LoadFewShotPrefix(a.few_shot));
  std::vector<std::string> cot_examples;
  if (!a.cot.empty()) {
    RLHF_ASSIGN_OR_RETURN(cot_examples, cai::LoadCotExamples(a.cot));
  }
  const bool cot = !a.cot.empty();
  const std::pair<double, double> clamp = {a.clamp_low >= 0 ? a.clamp_low : (cot ? 0.4 : 0.0),
                                           a.clamp_high >= 0 ? a.clamp_high : (cot ? 0.6 : 1.0)};
  RLHF_ASSIGN_OR_RETURN(auto tok, tokenizer::LoadTokenizer(a.tokenizer));
  const size_t n = records.size();
  const bool sample = !records[0].contains("a");
  for (size_t i = 0; i < n; ++i) {
    if (records[i].contains("a") == sample || records[i].contains("b") == sample ||
        (!sample && (!records[i]["a"].is_string() || !records[i]["b"].is_string()))) {
      return absl::InvalidArgumentError(absl::StrCat(
          a.prompts, " record ", i + 1,
          ": every record must be {\"prompt\"} or every record {\"prompt\", \"a\", \"b\"}"));
    }
  }
  if ((sample || cot) && a.gen.rollout.empty()) {
    return absl::InvalidArgumentError(
        "--rollout is needed to sample the responses (records without a/b) or rationales (--cot)");
  }
  std::fprintf(stderr, "cai-label: %zu prompts, %s responses, %lld principle(s) per pair%s\n", n,
               sample ? "sampling two" : "given", static_cast<long long>(a.ensemble),
               cot ? ", chain of thought" : "");
  std::mt19937_64 rng(a.gen.seed);
  Generator gen(a.gen);
  std::vector<std::string> conversations(n), resp_a(n), resp_b(n);
  for (size_t i = 0; i < n; ++i) conversations[i] = cai::Conversation(records[i]["prompt"]);
  if (sample) {
    RLHF_ASSIGN_OR_RETURN(resp_a, gen.Complete(conversations, 0));
    RLHF_ASSIGN_OR_RETURN(resp_b, gen.Complete(conversations, 1));
  } else {
    for (size_t i = 0; i < n; ++i) {
      resp_a[i] = records[i]["a"];
      resp_b[i] = records[i]["b"];
    }
  }
  OptionScorer scorer(a.reference, tok.get(), a.gen.batch);
  std::vector<json> out(n);
  std::vector<std::vector<std::pair<double, double>>> samples(n);
  for (size_t i = 0; i < n; ++i) {
    out[i] = {{"prompt", conversations[i]},
              {"a", resp_a[i]},
              {"b", resp_b[i]},
              {"principles", json::array()},
              {"option_logprobs", json::array()}};
  }
  const int orders = a.both_orders ? 2 : 1;
  for (int64_t k = 0; k < a.ensemble; ++k) {
    std::vector<const cai::FeedbackPrinciple*> drawn(n);
    for (size_t i = 0; i < n; ++i) drawn[i] = &principles[rng() % principles.size()];
    for (int order = 0; order < orders; ++order) {
      // order 1 asks the same question with the responses swapped.
      std::vector<std::string> prompts(n);
      for (size_t i = 0; i < n; ++i) {
        const std::string& first = order == 0 ? resp_a[i] : resp_b[i];
        const std::string& second = order == 0 ? resp_b[i] : resp_a[i];
        prompts[i] = cot ? cai::CotFeedbackPrompt(cot_examples, conversations[i], first, second,
                                                  *drawn[i])
                         : cai::FeedbackPrompt(few_shot, conversations[i], first, second,
                                               *drawn[i]);
      }
      std::vector<std::string> rationales;
      if (cot) {
        RLHF_ASSIGN_OR_RETURN(rationales, gen.Complete(prompts, 100 + 2 * k + order));
        for (size_t i = 0; i < n; ++i) prompts[i] = cai::CotAnswerPrompt(prompts[i], rationales[i]);
      }
      RLHF_ASSIGN_OR_RETURN(auto scores, scorer.Score(prompts));
      for (size_t i = 0; i < n; ++i) {
        // Always (log p(a), log p(b)): swapped answers are exchanged back.
        const auto s = order == 0 ? scores[i] : std::make_pair(scores[i].second, scores[i].first);
        samples[i].push_back(s);
        out[i]["principles"].push_back(drawn[i]->name);
        out[i]["option_logprobs"].push_back({s.first, s.second});
        if (cot) out[i]["rationales"].push_back(rationales[i]);
      }
    }
  }
  // rl::SoftPreferenceLabels on [samples, questions, 2]: the softmaxes averaged over the
  // principles, then clamped.
  rl::SoftLabelOptions label_options;
  if (clamp.first > 0 || clamp.second < 1)
    label_options.clamp = rl::ClipRange{clamp.first, clamp.second};
  RLHF_RETURN_IF_ERROR(rl::Validate(label_options));
  const int64_t per_pair = a.ensemble * orders;
  torch::Tensor logprobs = torch::empty({per_pair, static_cast<int64_t>(n), 2}, torch::kFloat64);
  auto acc = logprobs.accessor<double, 3>();
  for (size_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < per_pair; ++k) {
      if (!std::isfinite(samples[i][k].first) || !std::isfinite(samples[i][k].second)) {
        return absl::InternalError(
            absl::StrCat("record ", i + 1, ": a non-finite log-probability"));
      }
      acc[k][static_cast<int64_t>(i)][0] = samples[i][k].first;
      acc[k][static_cast<int64_t>(i)][1] = samples[i][k].second;
    }
  }
  const torch::Tensor labels = rl::SoftPreferenceLabels(logprobs, label_options);
  double mean = 0;
  for (size_t i = 0; i < n; ++i) {
    const double p = labels[static_cast<int64_t>(i)][0].item<double>();
    out[i]["p_a"] = p;
    mean += p;
  }
  RLHF_RETURN_IF_ERROR(WriteJsonl(a.out, out));
  std::fprintf(stderr,
               "cai-label: wrote %zu soft labels to %s (mean p_a %.3f, clamp [%.2f, %.2f])\n", n,
               a.out.c_str(), mean / static_cast<double>(n), clamp.first, clamp.second);
  return absl::OkStatus();
}

}  // namespace rlhf::cli
