#include "common/config/internal/value.h"

#include <yaml-cpp/yaml.h>

#include <exception>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

#include "absl/strings/str_cat.h"

namespace rlhf::config::internal {
namespace {

using Json = nlohmann::ordered_json;

// Deeper than any config: a document beyond it is an error, not a stack overflow (a YAML alias
// to a node that contains it is infinitely deep).
constexpr int kMaxDepth = 64;

// Throws YAML::Exception (caught by ParseYaml) for keys that are not scalars and for nesting
// deeper than kMaxDepth.
Value FromYaml(const YAML::Node& node, int depth = 0) {
  if (depth > kMaxDepth) {
    throw YAML::Exception(node.Mark(), absl::StrCat("nested deeper than ", kMaxDepth,
                                                    " levels (an alias to a node containing it?)"));
  }
  Value value;
  value.line = node.Mark().is_null() ? 0 : node.Mark().line + 1;
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      // yaml-cpp tags plain scalars "?" and quoted ones "!"; explicit tags count as quoted.
      value.kind = node.Tag() == "?" ? Value::Kind::kPlain : Value::Kind::kString;
      value.text = node.Scalar();
      break;
    case YAML::NodeType::Sequence:
      value.kind = Value::Kind::kList;
      for (const YAML::Node& item : node) value.items.push_back(FromYaml(item, depth + 1));
      break;
    case YAML::NodeType::Map:
      value.kind = Value::Kind::kMap;
      for (const auto& entry : node) {
        if (!entry.first.IsScalar()) {
          throw YAML::Exception(entry.first.Mark(), "mapping keys must be plain names");
        }
        value.entries.emplace_back(entry.first.Scalar(), FromYaml(entry.second, depth + 1));
      }
      break;
    default:  // Null, Undefined.
      value.kind = Value::Kind::kNull;
  }
  return value;
}

Value FromJson(const Json& json) {
  Value value;
  if (json.is_null()) {
    value.kind = Value::Kind::kNull;
  } else if (json.is_string()) {
    value.kind = Value::Kind::kString;
    value.text = json.get<std::string>();
  } else if (json.is_boolean()) {
    value.kind = Value::Kind::kBool;
    value.text = json.get<bool>() ? "true" : "false";
  } else if (json.is_number()) {
    value.kind = Value::Kind::kNumber;
    value.text = json.dump();
  } else if (json.is_array()) {
    value.kind = Value::Kind::kList;
    for (const Json& item : json) value.items.push_back(FromJson(item));
  } else {
    value.kind = Value::Kind::kMap;
    for (const auto& [key, item] : json.items()) value.entries.emplace_back(key, FromJson(item));
  }
  return value;
}

}  // namespace

std::string Describe(const Value& value) {
  switch (value.kind) {
    case Value::Kind::kNull:
      return "null";
    case Value::Kind::kPlain:
      return absl::StrCat("'", value.text, "'");
    case Value::Kind::kString:
      return absl::StrCat("string \"", value.text, "\"");
    case Value::Kind::kNumber:
      return absl::StrCat("number ", value.text);
    case Value::Kind::kBool:
      return absl::StrCat("boolean ", value.text);
    case Value::Kind::kList:
      return "a list";
    case Value::Kind::kMap:
      return "a mapping";
  }
  return "?";
}

absl::StatusOr<Value> ParseYaml(const std::string& text) {
  try {
    return FromYaml(YAML::Load(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        e.mark.is_null() ? absl::StrCat("invalid YAML: ", e.msg)
                         : absl::StrCat("line ", e.mark.line + 1, ": invalid YAML: ", e.msg));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("invalid YAML: ", e.what()));
  }
}

absl::StatusOr<Value> ParseJson(const std::string& text) {
  // One set of keys per open object, to find duplicates (nlohmann keeps the last silently).
  std::vector<std::set<std::string>> open;
  std::string duplicate;
  auto on_event = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if (depth > kMaxDepth) {  // FromJson recurses: bounded here
      throw std::invalid_argument(absl::StrCat("nested deeper than ", kMaxDepth, " levels"));
    }
    if (event == Json::parse_event_t::object_start) open.emplace_back();
    if (event == Json::parse_event_t::object_end) open.pop_back();
    if (event == Json::parse_event_t::key &&
        !open.back().insert(parsed.get<std::string>()).second && duplicate.empty()) {
      duplicate = parsed.get<std::string>();
    }
    return true;
  };
  try {
    const Json json = Json::parse(text, on_event);
    if (!duplicate.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("duplicate key '", duplicate, "'"));
    }
    return FromJson(json);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("invalid JSON: ", e.what()));
  }
}

}  // namespace rlhf::config::internal
