// Training data of the jobs (`rlhf sft`, `rlhf train-rm`, `rlhf eval`): JSONL files (plain or
// gzip) of preference pairs and demonstrations, in the Anthropic HH format or explicit fields.
// Bad records are reported with file and line number; a few are skipped with a count, more than
// the threshold (or any under `strict`) stop the read.
//
// Preference record forms (one per line; the form is chosen per line by its keys):
//  - HH:        {"chosen": "\n\nHuman: ...\n\nAssistant: ...", "rejected": "..."}
//               prompt = the text up to and including the last "\n\nAssistant:", response =
//               what follows it (one leading space removed). When chosen and rejected differ
//               before their last Assistant turn, each side keeps its own prompt.
//  - explicit:  {"prompt": "...", "chosen": "...", "rejected": "..."}
//  - soft:      {"prompt": "...", "a": "...", "b": "...", "p_a": 0.7}  (AI feedback labels)
// Demonstration forms: {"prompt": "...", "response": "..."}, or an HH transcript
// {"chosen": "\n\nHuman: ...\n\nAssistant: ..."} (extra keys such as "rejected" are ignored),
// which becomes segments whose Assistant turns are trained on and whose Human turns are not, or
// a document {"text": "..."}, trained on whole (pretraining).
#ifndef RLHF_COMMON_DATA_PREFERENCE_DATA_H_
#define RLHF_COMMON_DATA_PREFERENCE_DATA_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace rlhf::data {

struct PreferencePair {
  std::string prompt;           // the chosen side's prompt (HH: ends with "\n\nAssistant:")
  std::string chosen;           // response preferred (or "a" of a soft label)
  std::string rejected;         // the other response (or "b")
  std::string rejected_prompt;  // empty = same prompt; set when the HH sides differ earlier
  double p_chosen = 1.0;        // probability that `chosen` is better: 1 for hard labels
  int64_t line = 0;             // 1-based line in the file
};

// A demonstration as consecutive text pieces; the model is trained on the pieces with
// train == true (responses / Assistant turns) and sees the others as context.
struct Segment {
  std::string text;
  bool train = false;
};
struct Demonstration {
  std::vector<Segment> segments;
  int64_t line = 0;
};

// One HH turn.
struct Turn {
  enum Role { kHuman, kAssistant } role;
  std::string text;  // without the role marker and its following space
};

struct ReadOptions {
  // Any bad record is an error (file:line: reason).
  bool strict = false;
  // Otherwise bad records are skipped, unless there are more than this many.
  int64_t max_bad = 10;
};

struct ReadReport {
  int64_t records = 0;                // non-blank lines read
  int64_t skipped = 0;                // bad records skipped
  std::vector<std::string> problems;  // "file:line: reason", one per skipped record
};

template <typename T>
struct Dataset {
  std::vector<T> items;
  ReadReport report;
};

// Reads the lines of `path`; a name ending in ".gz" is decompressed (zlib). Errors: NotFound,
// DataLoss for a corrupt gzip stream.
absl::StatusOr<std::vector<std::string>> ReadTextLines(const std::string& path);

// Splits an HH conversation into turns. It must start with "\n\nHuman: " (else
// InvalidArgument). Role markers are "\n\nHuman:" and "\n\nAssistant:" only; consecutive turns of
// the same role (a marker missing its "\n\n" upstream) are kept as separate turns. A final
// Assistant turn may be empty ("...\n\nAssistant: " or "...\n\nAssistant:").
absl::StatusOr<std::vector<Turn>> ParseHhConversation(const std::string& text);

// Prompt/response split of one HH conversation (see the top). InvalidArgument when it has no
// Assistant turn.
struct PromptResponse {
  std::string prompt;
  std::string response;
};
absl::StatusOr<PromptResponse> SplitHhConversation(const std::string& text);

// Reads preference pairs (any of the three forms, mixed). Bad records: not JSON, not an object,
// missing or non-string fields, p_a not a number in [0, 1], an empty response or prompt, equal
// chosen and rejected texts, an HH string without the "\n\nHuman: " start or any Assistant turn.
absl::StatusOr<Dataset<PreferencePair>> ReadPreferences(const std::string& path,
                                                        const ReadOptions& options = {});

// Reads demonstrations. Bad records: as above, plus a transcript or response with nothing to
// train on (all Assistant turns empty).
absl::StatusOr<Dataset<Demonstration>> ReadDemonstrations(const std::string& path,
                                                          const ReadOptions& options = {});

}  // namespace rlhf::data

#endif  // RLHF_COMMON_DATA_PREFERENCE_DATA_H_
