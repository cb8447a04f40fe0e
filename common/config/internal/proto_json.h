// The schema walk of common/config: checks a parsed document (internal/value.h) against a proto
// descriptor and converts it into the JSON that protobuf's JsonStringToMessage accepts, scalars
// converted by their field's type. Also applies `path.to.field=value` overrides to that JSON.
//
// Errors are InvalidArgument with messages of the form "key 'rules[0].kind' (line 7): <problem>";
// the caller adds the source (file name). Thread-compatible; no shared state.
#ifndef RLHF_COMMON_CONFIG_INTERNAL_PROTO_JSON_H_
#define RLHF_COMMON_CONFIG_INTERNAL_PROTO_JSON_H_

#include <google/protobuf/descriptor.h>

#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/config/internal/value.h"

namespace rlhf::config::internal {

// Converts `value`, the body of a message of type `type` at key path `path` ("" for the root),
// into proto JSON with the proto field names as keys. Null values leave fields unset. Errors:
// unknown or duplicate keys (with the closest known field name), values of the wrong type, bad
// enum names, integers out of range.
absl::StatusOr<nlohmann::json> MessageToProtoJson(const Value& value,
                                                  const google::protobuf::Descriptor* type,
                                                  const std::string& path);

// Applies one override "a.b.c=value" to `config` (proto JSON of a message of type `type`, as
// MessageToProtoJson returns). The value is read by the field's type: text for strings, a
// scalar for numbers, bools and enums, YAML or JSON (e.g. [{"kind": "WORD_RATE"}]) for
// messages and repeated fields, which it replaces whole. An empty value for a message or
// repeated field resets it. REQUIRES: config is a JSON object.
absl::Status ApplyOverride(const std::string& assignment, const google::protobuf::Descriptor* type,
                           nlohmann::json* config);

}  // namespace rlhf::config::internal

#endif  // RLHF_COMMON_CONFIG_INTERNAL_PROTO_JSON_H_
