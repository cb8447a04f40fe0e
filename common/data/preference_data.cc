#include "common/data/preference_data.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status/status_macros.h"

namespace rlhf::data {
namespace {

using Json = nlohmann::json;

// std::string_view (this Abseil's absl::string_view is its own type): std::string searches take it.
constexpr std::string_view kHumanMarker = "\n\nHuman:";
constexpr std::string_view kAssistantMarker = "\n\nAssistant:";
constexpr std::string_view kHhStart = "\n\nHuman: ";

bool StartsWithHhStart(const std::string& text) {
  return text.compare(0, kHhStart.size(), kHhStart) == 0;
}

// ---- Reading files ------------------------------------------------------------------------------

absl::StatusOr<std::string> ReadPlainFile(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": is a directory"));
  }
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  }
  std::string content;
  char buffer[1 << 16];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0) content.append(buffer, n);
  const bool failed = std::ferror(file) != 0;
  std::fclose(file);
  if (failed) return absl::DataLossError(absl::StrCat(path, ": read error"));
  return content;
}

absl::StatusOr<std::string> ReadGzipFile(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": is a directory"));
  }
  errno = 0;
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) {
    return absl::NotFoundError(
        absl::StrCat(path, ": cannot open: ", errno != 0 ? std::strerror(errno) : "gzopen failed"));
  }
  std::string content;
  char buffer[1 << 16];
  int n;
  while ((n = gzread(file, buffer, sizeof(buffer))) > 0) content.append(buffer, n);
  int error = Z_OK;
  std::string message = gzerror(file, &error);
  // gzread passes a file that is not gzip through unchanged; a ".gz" name promises gzip.
  const bool direct = !content.empty() && gzdirect(file) != 0;
  const int close_status = gzclose_r(file);
  if (n < 0 || error != Z_OK) {
    return absl::DataLossError(absl::StrCat(path, ": corrupt gzip stream: ", message));
  }
  if (close_status != Z_OK) {
    return absl::DataLossError(absl::StrCat(path, ": corrupt gzip stream (truncated)"));
  }
  if (direct) return absl::DataLossError(absl::StrCat(path, ": not a gzip stream"));
  return content;
}

// ---- Record parsing -----------------------------------------------------------------------------

absl::Status Bad(absl::string_view reason) { return absl::InvalidArgumentError(reason); }

absl::StatusOr<std::string> StringField(const Json& record, const char* key) {
  const auto it = record.find(key);
  if (it == record.end()) return Bad(absl::StrCat("missing field \"", key, "\""));
  if (!it->is_string()) return Bad(absl::StrCat("field \"", key, "\" is not a string"));
  return it->get<std::string>();
}

absl::StatusOr<std::string> NonEmptyStringField(const Json& record, const char* key,
                                                absl::string_view what) {
  RLHF_ASSIGN_OR_RETURN(std::string value, StringField(record, key));
  if (value.empty()) return Bad(absl::StrCat(key, ": empty ", what));
  return value;
}

// Prefixes the message of a bad-record status with the field it came from.
absl::Status InField(absl::string_view key, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(key, ": ", status.message()));
}

// Splits one side of an HH pair; the key names the field in messages.
absl::StatusOr<PromptResponse> SplitHhSide(const std::string& text, absl::string_view key) {
  if (!StartsWithHhStart(text)) {
    return Bad(absl::StrCat(key, ": HH conversation does not start with \"\\n\\nHuman: \""));
  }
  absl::StatusOr<PromptResponse> split = SplitHhConversation(text);
  if (!split.ok()) return InField(key, split.status());
  if (split->response.empty()) return Bad(absl::StrCat(key, ": empty response"));
  return split;
}

absl::StatusOr<PreferencePair> ParseHhPair(const Json& record) {
  RLHF_ASSIGN_OR_RETURN(std::string chosen, StringField(record, "chosen"));
  RLHF_ASSIGN_OR_RETURN(std::string rejected, StringField(record, "rejected"));
  RLHF_ASSIGN_OR_RETURN(PromptResponse chosen_split, SplitHhSide(chosen, "chosen"));
  RLHF_ASSIGN_OR_RETURN(PromptResponse rejected_split, SplitHhSide(rejected, "rejected"));
  if (chosen == rejected) return Bad("chosen and rejected are equal");
  PreferencePair pair;
  pair.prompt = std::move(chosen_split.prompt);
  pair.chosen = std::move(chosen_split.response);
  pair.rejected = std::move(rejected_split.response);
  if (rejected_split.prompt != pair.prompt) pair.rejected_prompt = std::move(rejected_split.prompt);
  return pair;
}

absl::StatusOr<PreferencePair> ParseExplicitPair(const Json& record) {
  PreferencePair pair;
  RLHF_ASSIGN_OR_RETURN(pair.prompt, NonEmptyStringField(record, "prompt", "prompt"));
  RLHF_ASSIGN_OR_RETURN(pair.chosen, NonEmptyStringField(record, "chosen", "response"));
  RLHF_ASSIGN_OR_RETURN(pair.rejected, NonEmptyStringField(record, "rejected", "response"));
  if (pair.chosen == pair.rejected) return Bad("chosen and rejected are equal");
  pair.p_chosen = 1.0;
  return pair;
}

absl::StatusOr<PreferencePair> ParseSoftPair(const Json& record) {
  PreferencePair pair;
  RLHF_ASSIGN_OR_RETURN(pair.prompt, NonEmptyStringField(record, "prompt", "prompt"));
  RLHF_ASSIGN_OR_RETURN(pair.chosen, NonEmptyStringField(record, "a", "response"));
  RLHF_ASSIGN_OR_RETURN(pair.rejected, NonEmptyStringField(record, "b", "response"));
  const auto p = record.find("p_a");
  if (p == record.end()) return Bad("missing field \"p_a\"");
  // is_number() is false for booleans and null.
  if (!p->is_number()) return Bad("field \"p_a\" is not a number");
  const double p_a = p->get<double>();
  if (!(p_a >= 0.0 && p_a <= 1.0)) {
    return Bad(absl::StrCat("field \"p_a\" = ", p_a, " is not in [0, 1]"));
  }
  if (pair.chosen == pair.rejected) return Bad("a and b are equal");
  pair.p_chosen = p_a;
  return pair;
}

// The form is chosen by the keys: any of a/b/p_a -> soft, else prompt -> explicit, else HH.
absl::StatusOr<PreferencePair> ParsePreference(const Json& record) {
  if (record.contains("a") || record.contains("b") || record.contains("p_a")) {
    return ParseSoftPair(record);
  }
  if (record.contains("prompt")) return ParseExplicitPair(record);
  if (record.contains("chosen") || record.contains("rejected")) return ParseHhPair(record);
  return Bad(
      "unknown record form: expected keys chosen/rejected, prompt/chosen/rejected or "
      "prompt/a/b/p_a");
}

absl::StatusOr<Demonstration> ParseTranscript(const Json& record) {
  RLHF_ASSIGN_OR_RETURN(std::string transcript, StringField(record, "chosen"));
  absl::StatusOr<std::vector<Turn>> turns = ParseHhConversation(transcript);
  if (!turns.ok()) return InField("chosen", turns.status());
  Demonstration demo;
  bool trainable = false;
  for (Turn& turn : *turns) {
    if (turn.role == Turn::kHuman) {
      demo.segments.push_back({absl::StrCat(std::string(kHhStart), turn.text), false});
    } else if (!turn.text.empty()) {
      // Same shape as the preference split: the marker is context, the text (its one leading
      // space removed) is trained on.
      demo.segments.push_back({std::string(kAssistantMarker), false});
      demo.segments.push_back({std::move(turn.text), true});
      trainable = true;
    }
  }
  if (!trainable) return Bad("chosen: no non-empty Assistant turn to train on");
  return demo;
}

absl::StatusOr<Demonstration> ParseDemonstration(const Json& record) {
  if (record.contains("prompt") || record.contains("response")) {
    Demonstration demo;
    RLHF_ASSIGN_OR_RETURN(std::string prompt, NonEmptyStringField(record, "prompt", "prompt"));
    RLHF_ASSIGN_OR_RETURN(std::string response,
                          NonEmptyStringField(record, "response", "response"));
    demo.segments.push_back({std::move(prompt), false});
    demo.segments.push_back({std::move(response), true});
    return demo;
  }
  if (record.contains("chosen")) return ParseTranscript(record);
  if (record.contains("text")) {  // a document, trained on whole (pretraining)
    Demonstration demo;
    RLHF_ASSIGN_OR_RETURN(std::string text, NonEmptyStringField(record, "text", "text"));
    demo.segments.push_back({std::move(text), true});
    return demo;
  }
  return Bad("unknown record form: expected keys prompt/response, chosen or text");
}

bool IsBlank(absl::string_view line) { return absl::StripAsciiWhitespace(line).empty(); }

// Reads `path` record by record with `parse` and applies the bad-record policy of `options`.
template <typename T>
absl::StatusOr<Dataset<T>> ReadRecords(const std::string& path, const ReadOptions& options,
                                       absl::StatusOr<T> (*parse)(const Json&)) {
  RLHF_ASSIGN_OR_RETURN(std::vector<std::string> lines, ReadTextLines(path));
  Dataset<T> data;
  ReadReport& report = data.report;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (IsBlank(lines[i])) continue;
    const int64_t line = static_cast<int64_t>(i) + 1;
    ++report.records;
    absl::StatusOr<T> item = absl::InvalidArgumentError("invalid JSON");
    const Json record = Json::parse(lines[i], /*cb=*/nullptr, /*allow_exceptions=*/false);
    if (record.is_discarded()) {
      // `item` already holds the reason.
    } else if (!record.is_object()) {
      item = absl::InvalidArgumentError("not a JSON object");
    } else {
      item = parse(record);
    }
    if (item.ok()) {
      item->line = line;
      data.items.push_back(*std::move(item));
      continue;
    }
    std::string problem = absl::StrCat(path, ":", line, ": ", item.status().message());
    if (options.strict) return absl::InvalidArgumentError(problem);
    report.problems.push_back(std::move(problem));
    ++report.skipped;
    if (report.skipped > options.max_bad) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": more than ", options.max_bad, " bad records; first: ", report.problems.front()));
    }
  }
  if (report.records == 0) return absl::InvalidArgumentError(absl::StrCat(path, ": no records"));
  if (data.items.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": no valid records (", report.skipped,
                                                   " bad); first: ", report.problems.front()));
  }
  return data;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ReadTextLines(const std::string& path) {
  absl::StatusOr<std::string> content =
      absl::EndsWith(path, ".gz") ? ReadGzipFile(path) : ReadPlainFile(path);
  if (!content.ok()) return content.status();
  std::vector<std::string> lines;
  absl::string_view rest = *content;
  while (!rest.empty()) {
    const size_t end = rest.find('\n');
    absl::string_view line = rest.substr(0, end);
    if (absl::EndsWith(line, "\r")) line.remove_suffix(1);
    lines.emplace_back(line);
    if (end == absl::string_view::npos) break;
    rest.remove_prefix(end + 1);
  }
  return lines;
}

absl::StatusOr<std::vector<Turn>> ParseHhConversation(const std::string& text) {
  if (!StartsWithHhStart(text)) {
    return absl::InvalidArgumentError("HH conversation does not start with \"\\n\\nHuman: \"");
  }
  std::vector<Turn> turns;
  size_t pos = 0;  // always at a role marker
  while (pos < text.size()) {
    const bool human = text.compare(pos, kHumanMarker.size(), kHumanMarker) == 0;
    size_t start = pos + (human ? kHumanMarker.size() : kAssistantMarker.size());
    if (start < text.size() && text[start] == ' ') ++start;
    const size_t next =
        std::min({text.find(kHumanMarker, start), text.find(kAssistantMarker, start), text.size()});
    turns.push_back({human ? Turn::kHuman : Turn::kAssistant, text.substr(start, next - start)});
    pos = next;
  }
  return turns;
}

absl::StatusOr<PromptResponse> SplitHhConversation(const std::string& text) {
  const size_t last = text.rfind(kAssistantMarker);
  if (last == std::string::npos) return absl::InvalidArgumentError("no Assistant turn");
  const size_t end = last + kAssistantMarker.size();
  PromptResponse split;
  split.prompt = text.substr(0, end);
  split.response = text.substr(end);
  if (!split.response.empty() && split.response.front() == ' ') split.response.erase(0, 1);
  return split;
}

absl::StatusOr<Dataset<PreferencePair>> ReadPreferences(const std::string& path,
                                                        const ReadOptions& options) {
  return ReadRecords<PreferencePair>(path, options, &ParsePreference);
}

absl::StatusOr<Dataset<Demonstration>> ReadDemonstrations(const std::string& path,
                                                          const ReadOptions& options) {
  return ReadRecords<Demonstration>(path, options, &ParseDemonstration);
}

}  // namespace rlhf::data
