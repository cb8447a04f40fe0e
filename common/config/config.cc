#include "common/config/config.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <system_error>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/config/internal/proto_json.h"
#include "common/config/internal/value.h"
#include "common/status/status_macros.h"

namespace rlhf::config {
namespace {

using ::google::protobuf::Descriptor;
using ::google::protobuf::FieldDescriptor;
using ::google::protobuf::Message;
using ::google::protobuf::Reflection;

absl::Status WithSource(const std::string& source, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(source, ": ", status.message()));
}

absl::StatusOr<ConfigFormat> FormatOf(const std::string& path) {
  const std::string ext = absl::AsciiStrToLower(std::filesystem::path(path).extension().string());
  if (ext == ".yaml" || ext == ".yml") return ConfigFormat::kYaml;
  if (ext == ".json") return ConfigFormat::kJson;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown config file extension '", ext, "'; expected .yaml, .yml or .json"));
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::error_code ec;
  const std::filesystem::file_status status = std::filesystem::status(path, ec);
  if (ec == std::errc::no_such_file_or_directory) return absl::NotFoundError("no such file");
  if (ec) return absl::InvalidArgumentError(absl::StrCat("cannot read: ", ec.message()));
  if (std::filesystem::is_directory(status)) return absl::InvalidArgumentError("is a directory");
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in || in.bad()) return absl::InvalidArgumentError("cannot read the file");
  return text.str();
}

// Parses, checks and converts `text`, applies `overrides` and fills *config. Errors carry no
// source name; the callers add it.
absl::Status Load(const std::string& text, ConfigFormat format,
                  const std::vector<std::string>& overrides, Message* config) {
  RLHF_ASSIGN_OR_RETURN(internal::Value root, format == ConfigFormat::kYaml
                                                  ? internal::ParseYaml(text)
                                                  : internal::ParseJson(text));
  if (root.kind == internal::Value::Kind::kNull) root.kind = internal::Value::Kind::kMap;
  const Descriptor* type = config->GetDescriptor();
  RLHF_ASSIGN_OR_RETURN(nlohmann::json json, internal::MessageToProtoJson(root, type, ""));
  for (const std::string& assignment : overrides) {
    RLHF_RETURN_IF_ERROR(internal::ApplyOverride(assignment, type, &json));
  }
  std::string proto_json;
  try {
    proto_json = json.dump();
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("config text is not valid UTF-8: ", e.what()));
  }
  config->Clear();
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status = google::protobuf::util::JsonStringToMessage(proto_json, config, options);
  if (!status.ok()) return absl::InvalidArgumentError(status.message().ToString());
  return absl::OkStatus();
}

absl::Status LoadWithSource(const std::string& source, const std::string& text, ConfigFormat format,
                            const std::vector<std::string>& overrides, Message* config) {
  absl::Status status;
  try {
    status = Load(text, format, overrides, config);
  } catch (const std::exception& e) {  // Not expected: the parsers' exceptions are caught inside.
    status = absl::InternalError(absl::StrCat("unexpected exception: ", e.what()));
  }
  return status.ok() ? status : WithSource(source, status);
}

void SetDefault(const FieldDescriptor* field, const Reflection* r, Message* m) {
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return r->SetInt32(m, field, field->default_value_int32());
    case FieldDescriptor::CPPTYPE_INT64:
      return r->SetInt64(m, field, field->default_value_int64());
    case FieldDescriptor::CPPTYPE_UINT32:
      return r->SetUInt32(m, field, field->default_value_uint32());
    case FieldDescriptor::CPPTYPE_UINT64:
      return r->SetUInt64(m, field, field->default_value_uint64());
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return r->SetDouble(m, field, field->default_value_double());
    case FieldDescriptor::CPPTYPE_FLOAT:
      return r->SetFloat(m, field, field->default_value_float());
    case FieldDescriptor::CPPTYPE_BOOL:
      return r->SetBool(m, field, field->default_value_bool());
    case FieldDescriptor::CPPTYPE_ENUM:
      return r->SetEnum(m, field, field->default_value_enum());
    case FieldDescriptor::CPPTYPE_STRING:
      return r->SetString(m, field, field->default_value_string());
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return;
  }
}

// Sets every unset singular field of *m to its default, recursively, so that the JSON printer
// shows it. Unset sub-messages are created unless their type is already open above (recursive
// types), and members of unset oneofs stay unset.
void FillDefaults(Message* m, std::vector<const Descriptor*>* open) {
  const Descriptor* type = m->GetDescriptor();
  const Reflection* r = m->GetReflection();
  open->push_back(type);
  for (int i = 0; i < type->field_count(); ++i) {
    const FieldDescriptor* field = type->field(i);
    const bool is_message = field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE;
    if (field->is_repeated()) {
      for (int j = 0; is_message && j < r->FieldSize(*m, field); ++j) {
        FillDefaults(r->MutableRepeatedMessage(m, field, j), open);
      }
    } else if (field->real_containing_oneof() != nullptr && !r->HasField(*m, field)) {
      continue;
    } else if (is_message) {
      if (r->HasField(*m, field) ||
          std::find(open->begin(), open->end(), field->message_type()) == open->end()) {
        FillDefaults(r->MutableMessage(m, field), open);
      }
    } else if (!r->HasField(*m, field)) {
      SetDefault(field, r, m);
    }
  }
  open->pop_back();
}

}  // namespace

absl::Status LoadConfig(const std::string& path, const std::vector<std::string>& overrides,
                        Message* config) {
  absl::StatusOr<ConfigFormat> format = FormatOf(path);
  if (!format.ok()) return WithSource(path, format.status());
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return WithSource(path, text.status());
  return LoadWithSource(path, *text, *format, overrides, config);
}

absl::Status LoadConfigFromString(const std::string& text, ConfigFormat format,
                                  const std::vector<std::string>& overrides, Message* config) {
  return LoadWithSource("<string>", text, format, overrides, config);
}

std::string ConfigToJson(const Message& config) {
  std::unique_ptr<Message> copy(config.New());
  copy->CopyFrom(config);
  std::vector<const Descriptor*> open;
  FillDefaults(copy.get(), &open);
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string out;
  const auto status = google::protobuf::util::MessageToJsonString(*copy, &out, options);
  if (!status.ok()) {
    return absl::StrCat("{\"error\": ", nlohmann::json(status.message().ToString()).dump(), "}");
  }
  return out;
}

}  // namespace rlhf::config
