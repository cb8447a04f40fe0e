// A parsed config document before it meets the schema: YAML and JSON both become this tree, so
// that one schema walk (internal/proto_json.h) checks and converts either. It keeps what the
// schema walk needs and the source formats differ on: whether a scalar was quoted (a quoted
// "5" is a string, a plain 5 may be a number) and the source line for messages.
//
// Thread-compatible; the parse functions share no state.
#ifndef RLHF_COMMON_CONFIG_INTERNAL_VALUE_H_
#define RLHF_COMMON_CONFIG_INTERNAL_VALUE_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace rlhf::config::internal {

struct Value {
  enum class Kind {
    kNull,    // YAML ~ / null / nothing; JSON null.
    kPlain,   // An unquoted YAML scalar: its type comes from the schema.
    kString,  // A quoted YAML scalar or a JSON string.
    kNumber,  // A JSON number, `text` as written.
    kBool,    // A JSON boolean, `text` is "true" or "false".
    kList,    // `items`.
    kMap,     // `entries`, in document order (duplicates kept, so the walk can reject them).
  };
  Kind kind = Kind::kNull;
  std::string text;
  std::vector<Value> items;
  std::vector<std::pair<std::string, Value>> entries;
  // 1-based line in the source, 0 when unknown (JSON input, overrides).
  int line = 0;
};

// Returns a short description of `value` for messages: "string \"5\"", "'abc'", "a list", ...
std::string Describe(const Value& value);

// Parses a YAML document (an empty document is kNull). InvalidArgument with the line for
// syntax errors and for non-scalar mapping keys.
absl::StatusOr<Value> ParseYaml(const std::string& text);

// Parses a JSON document. InvalidArgument for syntax errors and duplicate keys.
absl::StatusOr<Value> ParseJson(const std::string& text);

}  // namespace rlhf::config::internal

#endif  // RLHF_COMMON_CONFIG_INTERNAL_VALUE_H_
