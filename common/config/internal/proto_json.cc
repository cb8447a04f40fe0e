#include "common/config/internal/proto_json.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <set>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status/status_macros.h"

namespace rlhf::config::internal {
namespace {

using ::google::protobuf::Descriptor;
using ::google::protobuf::EnumDescriptor;
using ::google::protobuf::FieldDescriptor;
using Json = nlohmann::json;

std::string Join(const std::string& path, const std::string& key) {
  return path.empty() ? key : absl::StrCat(path, ".", key);
}

absl::Status KeyError(const std::string& path, const Value& value, const std::string& problem) {
  const std::string where = path.empty() ? "top level" : absl::StrCat("key '", path, "'");
  const std::string line = value.line > 0 ? absl::StrCat(" (line ", value.line, ")") : "";
  return absl::InvalidArgumentError(absl::StrCat(where, line, ": ", problem));
}

size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t substitute =
          diagonal + (absl::ascii_tolower(a[i - 1]) != absl::ascii_tolower(b[j - 1]));
      diagonal = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, substitute});
    }
  }
  return row[b.size()];
}

// "; did you mean 'x'?" for the closest of `names` when it is close to `key`, else
// "; known names: a, b, c".
std::string Suggestion(const std::string& key, const std::vector<std::string>& names) {
  if (names.empty()) return "; it has no fields";
  const std::string* best = &names[0];
  for (const std::string& name : names) {
    if (EditDistance(key, name) < EditDistance(key, *best)) best = &name;
  }
  if (EditDistance(key, *best) <= std::max<size_t>(2, key.size() / 2)) {
    return absl::StrCat("; did you mean '", *best, "'?");
  }
  return absl::StrCat("; known names: ", absl::StrJoin(names, ", "));
}

const FieldDescriptor* FindField(const Descriptor* type, const std::string& key) {
  if (const FieldDescriptor* field = type->FindFieldByName(key)) return field;
  for (int i = 0; i < type->field_count(); ++i) {
    if (type->field(i)->json_name() == key) return type->field(i);
  }
  return nullptr;
}

absl::Status UnknownField(const std::string& path, const Value& value, const Descriptor* type,
                          const std::string& key) {
  std::vector<std::string> names;
  for (int i = 0; i < type->field_count(); ++i) names.push_back(type->field(i)->name());
  return KeyError(
      path, value,
      absl::StrCat("unknown field '", key, "' in ", type->full_name(), Suggestion(key, names)));
}

// "message rlhf.v1.X", "enum rlhf.v1.Y", "int32", ...
std::string ElementTypeName(const FieldDescriptor* field) {
  if (field->type() == FieldDescriptor::TYPE_MESSAGE) {
    return absl::StrCat("message ", field->message_type()->full_name());
  }
  if (field->type() == FieldDescriptor::TYPE_ENUM) {
    return absl::StrCat("enum ", field->enum_type()->full_name());
  }
  return field->type_name();
}

// What a singular value of `field` must be, for messages.
std::string TypeName(const FieldDescriptor* field) {
  if (field->type() == FieldDescriptor::TYPE_MESSAGE) {
    return absl::StrCat("a mapping (", ElementTypeName(field), ")");
  }
  return ElementTypeName(field);
}

absl::Status WrongType(const std::string& path, const Value& value, const FieldDescriptor* field) {
  return KeyError(path, value,
                  absl::StrCat("expected ", TypeName(field), ", got ", Describe(value)));
}

bool IsUnquotedScalar(const Value& value) {
  return value.kind == Value::Kind::kPlain || value.kind == Value::Kind::kNumber;
}

// True for an optional sign followed by decimal digits.
bool LooksLikeInteger(absl::string_view text) {
  if (!text.empty() && (text[0] == '-' || text[0] == '+')) text.remove_prefix(1);
  return !text.empty() && std::all_of(text.begin(), text.end(), absl::ascii_isdigit);
}

// int64 and uint64 are strings in proto JSON, so that no parser rounds them through double.
template <typename T>
bool ParseInteger(const std::string& text, bool as_string, Json* out) {
  T v;
  if (!absl::SimpleAtoi(text, &v)) return false;
  *out = as_string ? Json(std::to_string(v)) : Json(v);
  return true;
}

absl::StatusOr<Json> IntegerToJson(const Value& value, const FieldDescriptor* field,
                                   const std::string& path) {
  Json out;
  // 64-bit integers may also be quoted: the proto3 JSON mapping (and ConfigToJson) writes them
  // as strings, so that configs written by one process can be read by another.
  const bool is_64 = field->cpp_type() == FieldDescriptor::CPPTYPE_INT64 ||
                     field->cpp_type() == FieldDescriptor::CPPTYPE_UINT64;
  bool ok = IsUnquotedScalar(value) || (is_64 && value.kind == Value::Kind::kString);
  if (ok) {
    switch (field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
        ok = ParseInteger<int32_t>(value.text, false, &out);
        break;
      case FieldDescriptor::CPPTYPE_UINT32:
        ok = ParseInteger<uint32_t>(value.text, false, &out);
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        ok = ParseInteger<int64_t>(value.text, true, &out);
        break;
      default:
        ok = ParseInteger<uint64_t>(value.text, true, &out);
        break;
    }
  }
  if (ok) return out;
  if (IsUnquotedScalar(value) && LooksLikeInteger(value.text)) {
    return KeyError(path, value,
                    absl::StrCat(value.text, " is out of range for ", field->type_name()));
  }
  return WrongType(path, value, field);
}

absl::StatusOr<Json> FloatToJson(const Value& value, const FieldDescriptor* field,
                                 const std::string& path) {
  if (!IsUnquotedScalar(value)) return WrongType(path, value, field);
  std::string text = absl::AsciiStrToLower(value.text);
  if (text == ".inf" || text == "+.inf" || text == "-.inf" || text == ".nan") {
    text.erase(text.find('.'), 1);  // YAML spellings of inf and nan.
  }
  double d;
  if (!absl::SimpleAtod(text, &d)) return WrongType(path, value, field);
  if (field->cpp_type() == FieldDescriptor::CPPTYPE_FLOAT && std::isfinite(d) &&
      std::fabs(d) > FLT_MAX) {
    return KeyError(path, value, absl::StrCat(value.text, " is out of range for float"));
  }
  if (std::isnan(d)) return Json("NaN");
  if (std::isinf(d)) return Json(d > 0 ? "Infinity" : "-Infinity");
  return Json(d);
}

absl::StatusOr<Json> BoolToJson(const Value& value, const FieldDescriptor* field,
                                const std::string& path) {
  if (value.kind == Value::Kind::kBool ||
      (value.kind == Value::Kind::kPlain &&
       (value.text == "true" || value.text == "True" || value.text == "TRUE" ||
        value.text == "false" || value.text == "False" || value.text == "FALSE"))) {
    return Json(absl::AsciiStrToLower(value.text) == "true");
  }
  return WrongType(path, value, field);
}

absl::StatusOr<Json> EnumToJson(const Value& value, const FieldDescriptor* field,
                                const std::string& path) {
  const EnumDescriptor* type = field->enum_type();
  if (value.kind == Value::Kind::kList || value.kind == Value::Kind::kMap ||
      value.kind == Value::Kind::kBool) {
    return WrongType(path, value, field);
  }
  if (const auto* v = type->FindValueByName(value.text)) return Json(v->name());
  int number;
  if (absl::SimpleAtoi(value.text, &number)) {
    if (const auto* v = type->FindValueByNumber(number)) return Json(v->name());
  }
  std::vector<std::string> names;
  for (int i = 0; i < type->value_count(); ++i) names.push_back(type->value(i)->name());
  std::string hint = Suggestion(value.text, names);
  if (hint.find("did you mean") == std::string::npos) hint.clear();
  return KeyError(path, value,
                  absl::StrCat("bad value ", Describe(value), " for enum ", type->full_name(), hint,
                               " (valid: ", absl::StrJoin(names, ", "), ")"));
}

absl::StatusOr<Json> SingularToJson(const Value& value, const FieldDescriptor* field,
                                    const std::string& path) {
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_INT64:
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64:
      return IntegerToJson(value, field, path);
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT:
      return FloatToJson(value, field, path);
    case FieldDescriptor::CPPTYPE_BOOL:
      return BoolToJson(value, field, path);
    case FieldDescriptor::CPPTYPE_ENUM:
      return EnumToJson(value, field, path);
    case FieldDescriptor::CPPTYPE_STRING:
      if (value.kind != Value::Kind::kPlain && value.kind != Value::Kind::kString) {
        return WrongType(path, value, field);
      }
      return Json(value.text);
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return MessageToProtoJson(value, field->message_type(), path);
  }
  return WrongType(path, value, field);
}

absl::StatusOr<Json> FieldToJson(const Value& value, const FieldDescriptor* field,
                                 const std::string& path) {
  if (field->is_map()) {
    if (value.kind != Value::Kind::kMap) return WrongType(path, value, field);
    Json out = Json::object();
    for (const auto& [key, item] : value.entries) {
      RLHF_ASSIGN_OR_RETURN(
          out[key], SingularToJson(item, field->message_type()->map_value(), Join(path, key)));
    }
    return out;
  }
  if (!field->is_repeated()) return SingularToJson(value, field, path);
  if (value.kind != Value::Kind::kList) {
    return KeyError(
        path, value,
        absl::StrCat("expected a list of ", ElementTypeName(field), ", got ", Describe(value)));
  }
  Json out = Json::array();
  for (size_t i = 0; i < value.items.size(); ++i) {
    const std::string item_path = absl::StrCat(path, "[", i, "]");
    if (value.items[i].kind == Value::Kind::kNull) {
      return KeyError(item_path, value.items[i], "list elements cannot be null");
    }
    RLHF_ASSIGN_OR_RETURN(Json item, SingularToJson(value.items[i], field, item_path));
    out.push_back(std::move(item));
  }
  return out;
}

void ForgetLines(Value* value) {
  value->line = 0;
  for (Value& item : value->items) ForgetLines(&item);
  for (auto& entry : value->entries) ForgetLines(&entry.second);
}

// The value of an override, read by the type of the field it sets.
absl::StatusOr<Value> OverrideValue(const FieldDescriptor* field, const std::string& text) {
  if (field->is_repeated() || field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
    absl::StatusOr<Value> parsed = ParseYaml(text);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("value is not valid YAML or JSON: ", parsed.status().message()));
    }
    ForgetLines(&*parsed);  // Lines within the override text would mislead.
    return parsed;
  }
  Value value;
  value.kind = field->cpp_type() == FieldDescriptor::CPPTYPE_STRING ? Value::Kind::kString
                                                                    : Value::Kind::kPlain;
  value.text = text;
  return value;
}

absl::Status ApplyOverrideImpl(const std::string& path_text, const std::string& text,
                               const Descriptor* type, Json* node) {
  const std::vector<std::string> segments = absl::StrSplit(path_text, '.');
  std::string path;
  const FieldDescriptor* field = nullptr;
  for (size_t i = 0; i < segments.size(); ++i) {
    if (segments[i].empty()) {
      return absl::InvalidArgumentError(absl::StrCat("empty component in path '", path_text, "'"));
    }
    if (field != nullptr) {  // Descend into the previous segment's message.
      Json& child = (*node)[field->name()];
      if (!child.is_object()) child = Json::object();
      node = &child;
      type = field->message_type();
    }
    field = FindField(type, segments[i]);
    if (field == nullptr) return UnknownField(Join(path, segments[i]), Value(), type, segments[i]);
    path = Join(path, field->name());
    if (i + 1 < segments.size() &&
        (field->is_repeated() || field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE)) {
      return KeyError(path, Value(),
                      absl::StrCat("is ", field->is_repeated() ? "a list" : field->type_name(),
                                   ", not a message; set it whole, e.g. ", path, "=..."));
    }
  }
  RLHF_ASSIGN_OR_RETURN(const Value value, OverrideValue(field, text));
  if (value.kind == Value::Kind::kNull) {
    node->erase(field->name());
    return absl::OkStatus();
  }
  RLHF_ASSIGN_OR_RETURN((*node)[field->name()], FieldToJson(value, field, path));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Json> MessageToProtoJson(const Value& value, const Descriptor* type,
                                        const std::string& path) {
  if (value.kind != Value::Kind::kMap) {
    return KeyError(path, value,
                    absl::StrCat("expected a mapping (message ", type->full_name(), "), got ",
                                 Describe(value)));
  }
  Json out = Json::object();
  std::set<const FieldDescriptor*> seen;
  for (const auto& [key, item] : value.entries) {
    const FieldDescriptor* field = FindField(type, key);
    if (field == nullptr) return UnknownField(Join(path, key), item, type, key);
    if (!seen.insert(field).second) {
      return KeyError(Join(path, key), item,
                      absl::StrCat("duplicate key: field '", field->name(), "' is set twice"));
    }
    if (item.kind == Value::Kind::kNull) continue;
    RLHF_ASSIGN_OR_RETURN(out[field->name()], FieldToJson(item, field, Join(path, key)));
  }
  return out;
}

absl::Status ApplyOverride(const std::string& assignment, const Descriptor* type, Json* config) {
  const size_t eq = assignment.find('=');
  absl::Status status =
      eq == std::string::npos || eq == 0
          ? absl::InvalidArgumentError("expected path.to.field=value")
          : ApplyOverrideImpl(assignment.substr(0, eq), assignment.substr(eq + 1), type, config);
  if (status.ok()) return status;
  return absl::InvalidArgumentError(
      absl::StrCat("override '", assignment, "': ", status.message()));
}

}  // namespace rlhf::config::internal
