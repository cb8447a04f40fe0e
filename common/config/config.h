// Typed configuration: every process's config is a proto message (proto/rlhf/v1/config.proto)
// read from YAML or JSON and overridden with `--set path.to.field=value`. Invalid config fails
// here, before any work starts, with an error naming the source, the key and the problem:
//
//   reward.yaml: key 'server.listen_adress' (line 3): unknown field 'listen_adress' in
//   rlhf.v1.ServerConfig; did you mean 'listen_address'?
//
// Keys may be proto field names or their JSON (lowerCamel) names. Scalars are read by their
// field's type: unquoted YAML scalars become numbers, booleans (true/false) or enum names where
// the field says so, while a quoted "5" for an int field is an error. A null value (`key:` or
// `key: ~`) leaves the field unset. Well-known types (Duration, Struct, ...) are not supported.
//
// Every function here is thread-safe: they share no state.
#ifndef RLHF_COMMON_CONFIG_CONFIG_H_
#define RLHF_COMMON_CONFIG_CONFIG_H_

#include <google/protobuf/message.h>

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace rlhf::config {

enum class ConfigFormat { kYaml, kJson };

// Replaces *config with the content of the file at `path` (YAML for .yaml/.yml, JSON for
// .json), then applies `overrides` in order. Each override is "a.b.c=value": the value is read
// by the field's type; messages and repeated fields take YAML or JSON and are replaced whole,
// e.g. `rules=[{"kind": "WORD_RATE", "word": "a"}]`; an empty value resets them.
// Returns NotFound when `path` does not exist; InvalidArgument, with a message that starts with
// `path` and names the key, for an unknown extension, unreadable file, syntax error, unknown
// key (suggesting the closest field name), wrong type, bad enum name, duplicate key, integer out
// of range, malformed override or override of an unknown path. On error *config is unspecified.
// REQUIRES: config != nullptr.
absl::Status LoadConfig(const std::string& path, const std::vector<std::string>& overrides,
                        google::protobuf::Message* config);

// As LoadConfig, for a document held in memory; messages name the source "<string>".
absl::Status LoadConfigFromString(const std::string& text, ConfigFormat format,
                                  const std::vector<std::string>& overrides,
                                  google::protobuf::Message* config);

// Returns the effective `config` as one line of JSON with proto field names, every field
// included: unset fields show their (proto2) defaults and unset sub-messages are shown with
// theirs, so the log says exactly what the process runs with. Members of an unset oneof are
// left out.
std::string ConfigToJson(const google::protobuf::Message& config);

}  // namespace rlhf::config

#endif  // RLHF_COMMON_CONFIG_CONFIG_H_
