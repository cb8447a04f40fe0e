#include "common/cai/cai.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace rlhf::cai {
namespace {

constexpr char kHuman[] = "\n\nHuman:";
constexpr char kAssistant[] = "\n\nAssistant:";

absl::StatusOr<nlohmann::json> ReadJsonList(const std::string& path, bool allow_empty = false) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(path, ": not JSON"));
  if (!j.is_array() || (j.empty() && !allow_empty)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": expected a non-empty JSON list"));
  }
  return j;
}

absl::StatusOr<std::string> Field(const nlohmann::json& entry, const char* key,
                                  const std::string& where) {
  if (!entry.is_object() || !entry.contains(key) || !entry[key].is_string() ||
      entry[key].get<std::string>().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": '", key, "' must be a non-empty string"));
  }
  return entry[key].get<std::string>();
}

}  // namespace

absl::StatusOr<std::vector<Principle>> LoadConstitution(const std::string& path) {
  absl::StatusOr<nlohmann::json> list = ReadJsonList(path);
  if (!list.ok()) return list.status();
  std::vector<Principle> out;
  for (size_t i = 0; i < list->size(); ++i) {
    const nlohmann::json& e = (*list)[i];
    const std::string where = absl::StrCat(path, " entry ", i);
    Principle p;
    for (auto [key, field] : {std::pair<const char*, std::string*>{"name", &p.name},
                              {"critique_request", &p.critique_request},
                              {"revision_request", &p.revision_request}}) {
      absl::StatusOr<std::string> v = Field(e, key, where);
      if (!v.ok()) return v.status();
      *field = *v;
    }
    const std::string critique_raw =
        absl::StrCat("\n\nCritiqueRequest: ", p.critique_request, "\n\nCritique:");
    const std::string revision_raw =
        absl::StrCat("\n\nRevisionRequest: ", p.revision_request, "\n\nRevision:");
    if (e.contains("critique_prompt_raw") && e["critique_prompt_raw"] != critique_raw) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, " (", p.name,
                       "): critique_prompt_raw is not \"\\n\\nCritiqueRequest: \" + "
                       "critique_request + \"\\n\\nCritique:\""));
    }
    if (e.contains("revision_prompt_raw") && e["revision_prompt_raw"] != revision_raw) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, " (", p.name,
                       "): revision_prompt_raw is not \"\\n\\nRevisionRequest: \" + "
                       "revision_request + \"\\n\\nRevision:\""));
    }
    out.push_back(std::move(p));
  }
  return out;
}

absl::StatusOr<std::vector<FeedbackPrinciple>> LoadFeedbackPrinciples(const std::string& path) {
  absl::StatusOr<nlohmann::json> list = ReadJsonList(path);
  if (!list.ok()) return list.status();
  std::vector<FeedbackPrinciple> out;
  for (size_t i = 0; i < list->size(); ++i) {
    const nlohmann::json& e = (*list)[i];
    const std::string where = absl::StrCat(path, " entry ", i);
    FeedbackPrinciple p;
    absl::StatusOr<std::string> name = Field(e, "name", where);
    if (!name.ok()) return name.status();
    absl::StatusOr<std::string> question = Field(e, "question", where);
    if (!question.ok()) return question.status();
    p.name = *name;
    p.question = *question;
    p.raw = absl::StrCat("\n", p.question, " Options:");
    if (e.contains("raw") && e["raw"] != p.raw) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, " (", p.name, "): raw is not \"\\n\" + question + \" Options:\""));
    }
    out.push_back(std::move(p));
  }
  return out;
}

absl::StatusOr<std::string> LoadFewShotPrefix(const std::string& path) {
  if (path.empty()) return std::string();
  absl::StatusOr<nlohmann::json> list = ReadJsonList(path);
  if (!list.ok()) return list.status();
  std::string prefix;
  for (size_t i = 0; i < list->size(); ++i) {
    if (!(*list)[i].is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, " entry ", i, ": expected a string (a complete example)"));
    }
    // 4 of the 5 upstream examples end with "\n\nHuman:" (the next turn's start); each example,
    // and the conversation that follows them, begins with one: drop it.
    absl::string_view example = (*list)[i].get_ref<const std::string&>();
    absl::ConsumeSuffix(&example, kHuman);
    absl::StrAppend(&prefix, example);
  }
  return prefix;
}

std::string Conversation(const std::string& prompt) {
  if (absl::StartsWith(prompt, kHuman)) {
    return absl::EndsWith(prompt, kAssistant) ? prompt : absl::StrCat(prompt, kAssistant);
  }
  return absl::StrCat("\n\nHuman: ", prompt, kAssistant);
}

std::string WithResponse(const std::string& conversation, const std::string& response) {
  return absl::StrCat(conversation, " ", response);
}

std::string CritiquePrompt(const std::string& few_shot, const std::string& conversation,
                           const std::string& response, const Principle& p) {
  return absl::StrCat(few_shot, WithResponse(conversation, response),
                      "\n\nCritiqueRequest: ", p.critique_request, "\n\nCritique:");
}

std::string RevisionPrompt(const std::string& critique_prompt, const std::string& critique,
                           const Principle& p) {
  return absl::StrCat(critique_prompt, " ", critique, "\n\nRevisionRequest: ", p.revision_request,
                      "\n\nRevision:");
}

std::string FeedbackPrompt(const std::string& few_shot, const std::string& conversation,
                           const std::string& response_a, const std::string& response_b,
                           const FeedbackPrinciple& p) {
  // The context: the conversation without its last "\n\nAssistant:" and leading "\n\n".
  std::string context = conversation;
  if (absl::EndsWith(context, kAssistant)) context.resize(context.size() - strlen(kAssistant));
  absl::string_view trimmed = context;
  absl::ConsumePrefix(&trimmed, "\n\n");
  return absl::StrCat(few_shot,
                      "\n\nConsider the following conversation between a human and an "
                      "assistant:\n\n",
                      trimmed, "\n\n", p.raw, "\n (A) [[[", response_a, "]]]\n (B) [[[", response_b,
                      "]]]\n\nThe answer is:");
}

std::string CotFeedbackPrompt(const std::vector<std::string>& cot_examples,
                              const std::string& conversation, const std::string& response_a,
                              const std::string& response_b, const FeedbackPrinciple& p) {
  std::string few_shot;
  for (const std::string& e : cot_examples) {
    const size_t at = e.find("{}");
    absl::StrAppend(&few_shot, e.substr(0, at), p.raw, e.substr(at + 2));
  }
  std::string prompt = FeedbackPrompt(few_shot, conversation, response_a, response_b, p);
  prompt.resize(prompt.size() - strlen("\n\nThe answer is:"));
  return absl::StrCat(prompt, "\n\nAssistant: Let's think step by step:");
}

std::string CotAnswerPrompt(const std::string& cot_prompt, const std::string& rationale) {
  return absl::StrCat(cot_prompt, "\n", rationale, "\n\nHuman:\nSo the answer is:");
}

absl::StatusOr<std::vector<std::string>> LoadCotExamples(const std::string& path) {
  absl::StatusOr<nlohmann::json> list = ReadJsonList(path, /*allow_empty=*/true);
  if (!list.ok()) return list.status();
  std::vector<std::string> out;
  for (size_t i = 0; i < list->size(); ++i) {
    const std::string where = absl::StrCat(path, " entry ", i);
    absl::StatusOr<std::string> prompt = Field((*list)[i], "prompt", where);
    if (!prompt.ok()) return prompt.status();
    const size_t at = prompt->find("{}");
    if (at == std::string::npos || prompt->find("{}", at + 2) != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": expected exactly one \"{}\""));
    }
    out.push_back(*prompt);
  }
  return out;
}

std::string FirstTurn(const std::string& generated) {
  size_t end = generated.size();
  for (const char* marker : {"\n\nHuman:", "\n\nAssistant:", "\n\nCritiqueRequest:",
                             "\n\nRevisionRequest:", "\n\nCritique:", "\n\nRevision:"}) {
    end = std::min(end, generated.find(marker));
  }
  return std::string(absl::StripAsciiWhitespace(generated.substr(0, end)));
}

}  // namespace rlhf::cai
