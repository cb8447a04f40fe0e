#include "cli/generate_command.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "cli/job_util.h"
#include "common/checkpoint/checkpoint.h"
#include "common/model/generation.h"
#include "common/status/status_macros.h"
#include "common/tokenizer/tokenizer.h"

namespace rlhf::cli {
namespace {

using nlohmann::json;

// Reads {"prompt": "..."} lines; blank lines are skipped, anything else is an error with the
// file and line number.
absl::StatusOr<std::vector<std::string>> ReadPromptsFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open prompts file"));
  std::vector<std::string> prompts;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", n, ": not valid JSON"));
    }
    if (!j.is_object() || !j.contains("prompt") || !j["prompt"].is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", n, ": expected an object with a string field \"prompt\""));
    }
    prompts.push_back(j["prompt"].get<std::string>());
  }
  if (prompts.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": no prompts"));
  return prompts;
}

}  // namespace

CLI::App* AddGenerateCommand(CLI::App& app, GenerateArgs& a) {
  CLI::App* cmd = app.add_subcommand("generate", "Sample continuations of prompts from a model");
  cmd->add_option("--model", a.model, "HF Llama directory or llama2.c .bin checkpoint")
      ->required();
  cmd->add_option("--tokenizer", a.tokenizer,
                  "SentencePiece .model or llama2.c tokenizer.bin "
                  "(default: tokenizer.model/.bin next to the model)");
  auto* one = cmd->add_option("--prompt", a.prompt, "a prompt");
  auto* many = cmd->add_option("--prompts", a.prompts, "JSONL file of {\"prompt\": ...} lines");
  one->excludes(many);
  cmd->add_option("--max-new-tokens", a.max_new_tokens, "tokens to generate at most")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))
      ->capture_default_str();
  cmd->add_option("--temperature", a.temperature, "softmax temperature; 0 = greedy")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--top-k", a.top_k, "sample from the k most likely tokens (0 = off)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--top-p", a.top_p, "nucleus sampling mass (1 = off)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--seed", a.seed, "RNG seed (prompt i uses seed + i)")->capture_default_str();
  cmd->add_option("--batch-size", a.batch_size, "prompts generated together")
      ->check(CLI::Range(int64_t{1}, int64_t{4096}))
      ->capture_default_str();
  cmd->add_flag("--jsonl", a.jsonl, "print JSON lines with tokens, log-probs, finish reason");
  cmd->add_flag("--no-bos", a.no_bos, "do not prepend the BOS token");
  cmd->add_flag("--ignore-eos", a.ignore_eos, "keep generating after EOS");
  return cmd;
}

absl::Status RunGenerate(const GenerateArgs& a) {
  std::vector<std::string> texts;
  if (!a.prompts.empty()) {
    RLHF_ASSIGN_OR_RETURN(texts, ReadPromptsFile(a.prompts));
  } else if (!a.prompt.empty()) {
    texts.push_back(a.prompt);
  } else {
    return absl::InvalidArgumentError("give --prompt TEXT or --prompts FILE.jsonl");
  }
  const std::string tok_path = a.tokenizer.empty() ? TokenizerBeside(a.model) : a.tokenizer;
  if (tok_path.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("no --tokenizer given and none found next to ", a.model));
  }
  RLHF_ASSIGN_OR_RETURN(auto tokenizer, tokenizer::LoadTokenizer(tok_path));
  RLHF_ASSIGN_OR_RETURN(model::Llama llama, checkpoint::LoadModel(a.model));
  if (tokenizer->vocab_size() != llama->config().vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tokenizer ", tok_path, " has ", tokenizer->vocab_size(), " tokens but model ", a.model,
        " has vocab_size ", llama->config().vocab_size));
  }
  RLHF_ASSIGN_OR_RETURN(auto engine, model::GenerationEngine::Create(llama));
  model::SamplingOptions opts;
  opts.temperature = a.temperature;
  opts.top_k = a.top_k;
  opts.top_p = a.top_p;
  opts.max_new_tokens = a.max_new_tokens;
  opts.stop_at_eos = !a.ignore_eos;
  RLHF_RETURN_IF_ERROR(model::Validate(opts));

  for (size_t start = 0; start < texts.size(); start += a.batch_size) {
    const size_t end = std::min(texts.size(), start + static_cast<size_t>(a.batch_size));
    std::vector<std::vector<int64_t>> batch;
    std::vector<uint64_t> seeds;
    for (size_t i = start; i < end; ++i) {
      std::vector<int> ids = tokenizer->Encode(texts[i]);
      std::vector<int64_t> prompt;
      if (!a.no_bos) prompt.push_back(tokenizer->bos_id());
      prompt.insert(prompt.end(), ids.begin(), ids.end());
      if (prompt.empty()) return absl::InvalidArgumentError(absl::StrCat("prompt ", i, " is empty"));
      batch.push_back(std::move(prompt));
      seeds.push_back(a.seed + i);
    }
    RLHF_ASSIGN_OR_RETURN(auto results, engine->Generate(batch, opts, seeds));
    for (size_t k = 0; k < results.size(); ++k) {
      const auto& r = results[k];
      std::vector<int> ids(r.tokens.begin(), r.tokens.end());
      const std::string text = tokenizer->Decode(ids);
      if (a.jsonl) {
        json line = {{"index", start + k},        {"prompt", texts[start + k]},
                     {"prompt_tokens", batch[k]}, {"text", text},
                     {"tokens", r.tokens},        {"logprobs", r.logprobs},
                     {"finish_reason", model::FinishReasonName(r.finish_reason)}};
        std::printf("%s\n", line.dump(-1, ' ', false, json::error_handler_t::replace).c_str());
      } else {
        std::printf("%s%s\n", texts[start + k].c_str(), text.c_str());
        if (texts.size() > 1) std::printf("\n");
      }
    }
    std::fflush(stdout);
    if (texts.size() > static_cast<size_t>(a.batch_size)) {
      std::fprintf(stderr, "generated %zu/%zu prompts\n", end, texts.size());
    }
  }
  return absl::OkStatus();
}

}  // namespace rlhf::cli
