#include "common/world/world_files.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/status/status_macros.h"
#include "common/tokenizer/tokenizer.h"

namespace rlhf::world {
namespace {

using nlohmann::json;

absl::Status WriteLines(const std::string& path, const std::vector<json>& records) {
  std::ofstream out(path, std::ios::trunc);
  for (const json& r : records) out << r.dump() << "\n";
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

absl::Status WriteJson(const std::string& path, const json& value) {
  std::ofstream out(path, std::ios::trunc);
  out << value.dump(2) << "\n";
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

json PromptRecord(const Prompt& p) {
  return {{"prompt", p.Conversation()}, {"kind", KindName(p.kind)}};
}

std::vector<json> PairRecords(const std::vector<Comparison>& comparisons) {
  std::vector<json> out;
  for (const Comparison& c : comparisons) {
    out.push_back({{"prompt", c.prompt->Conversation()},
                   {"chosen", c.first_preferred ? c.first : c.second},
                   {"rejected", c.first_preferred ? c.second : c.first}});
  }
  return out;
}

}  // namespace

absl::StatusOr<WorldFiles> WriteWorld(const World& world, const std::string& dir,
                                      int redteam_repeats, int ai_label_repeats) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  WorldFiles f;
  auto at = [&](const char* name) { return absl::StrCat(dir, "/", name); };

  // The tokenizer, checked on every text the world writes.
  const std::vector<std::string> texts = world.AllTexts();
  const std::vector<tokenizer::PieceSpec> pieces = tokenizer::WordVocabulary(texts);
  tokenizer::SentencePieceOptions options;
  options.model_type = tokenizer::ModelType::kUnigram;
  f.tokenizer = at("tokenizer.model");
  RLHF_RETURN_IF_ERROR(tokenizer::WriteSentencePieceModel(pieces, options, f.tokenizer));
  RLHF_ASSIGN_OR_RETURN(auto tok, tokenizer::LoadTokenizer(f.tokenizer));
  f.vocab_size = tok->vocab_size();
  for (const std::string& text : texts) {
    const std::vector<int> ids = tok->Encode(text);
    for (int id : ids) {
      if (pieces[id].score < -1.5f) {
        return absl::InternalError(absl::StrCat("world vocabulary: \"", text,
                                                "\" needs the piece \"", pieces[id].piece, "\""));
      }
    }
    const std::string back = tok->Decode(ids);
    if (back != text && back != text.substr(text.find_first_not_of(' '))) {
      return absl::InternalError(
          absl::StrCat("world vocabulary: \"", text, "\" decodes as \"", back, "\""));
    }
  }

  std::vector<json> corpus;
  for (std::string& doc : world.Corpus()) corpus.push_back({{"text", std::move(doc)}});
  f.corpus = at("corpus.jsonl");
  RLHF_RETURN_IF_ERROR(WriteLines(f.corpus, corpus));

  std::vector<json> train, eval, redteam, ai_label;
  for (const Prompt& p : world.train()) {
    train.push_back(PromptRecord(p));
    if (p.kind == Kind::kHarmful) {
      for (int i = 0; i < redteam_repeats; ++i) redteam.push_back(PromptRecord(p));
    }
    if (p.kind != Kind::kBenign) {
      for (int i = 0; i < ai_label_repeats; ++i) ai_label.push_back(PromptRecord(p));
    }
  }
  for (const Prompt& p : world.eval()) eval.push_back(PromptRecord(p));
  f.train_prompts = at("prompts_train.jsonl");
  f.eval_prompts = at("prompts_eval.jsonl");
  f.redteam_prompts = at("prompts_redteam.jsonl");
  f.ai_label_prompts = at("prompts_ai_label.jsonl");
  RLHF_RETURN_IF_ERROR(WriteLines(f.train_prompts, train));
  RLHF_RETURN_IF_ERROR(WriteLines(f.eval_prompts, eval));
  RLHF_RETURN_IF_ERROR(WriteLines(f.redteam_prompts, redteam));
  RLHF_RETURN_IF_ERROR(WriteLines(f.ai_label_prompts, ai_label));

  std::vector<json> demos;
  for (const auto& [p, response] : world.Demonstrations()) {
    demos.push_back({{"prompt", p->Conversation()}, {"response", response}});
  }
  f.demonstrations = at("sft_demos.jsonl");
  RLHF_RETURN_IF_ERROR(WriteLines(f.demonstrations, demos));

  const std::vector<Comparison> harm = world.HarmlessnessComparisons();
  f.help_pairs = at("pairs_help.jsonl");
  f.harm_pairs = at("pairs_harm.jsonl");
  f.redteam_pairs = at("pairs_redteam_unlabelled.jsonl");
  RLHF_RETURN_IF_ERROR(WriteLines(f.help_pairs, PairRecords(world.HelpfulnessComparisons())));
  RLHF_RETURN_IF_ERROR(WriteLines(f.harm_pairs, PairRecords(harm)));
  std::vector<json> unlabelled;
  for (const Comparison& c : harm) {
    unlabelled.push_back({{"prompt", c.prompt->Conversation()}, {"a", c.first}, {"b", c.second}});
  }
  RLHF_RETURN_IF_ERROR(WriteLines(f.redteam_pairs, unlabelled));

  json constitution = json::array(), principles = json::array();
  for (const cai::Principle& p : Constitution()) {
    constitution.push_back({{"name", p.name},
                            {"critique_request", p.critique_request},
                            {"revision_request", p.revision_request}});
  }
  for (const cai::FeedbackPrinciple& p : FeedbackPrinciples()) {
    principles.push_back({{"name", p.name}, {"question", p.question}});
  }
  f.constitution = at("constitution.json");
  f.feedback_principles = at("feedback_principles.json");
  f.cot_examples = at("cot_examples.json");
  RLHF_RETURN_IF_ERROR(WriteJson(f.constitution, constitution));
  RLHF_RETURN_IF_ERROR(WriteJson(f.feedback_principles, principles));
  RLHF_RETURN_IF_ERROR(WriteJson(f.cot_examples, json::array()));
  return f;
}

}  // namespace rlhf::world
