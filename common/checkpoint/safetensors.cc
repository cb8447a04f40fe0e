#include "common/checkpoint/safetensors.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file/file.h"
#include "common/status/exception.h"
#include "common/status/status_macros.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors data is little-endian; this code copies it as is");

namespace rlhf::checkpoint {
namespace {

using Json = nlohmann::ordered_json;

struct DtypeInfo {
  const char* name;
  torch::ScalarType type;
  uint64_t size;
};

constexpr DtypeInfo kDtypes[] = {
    {"F64", torch::kFloat64, 8},   {"F32", torch::kFloat32, 4}, {"F16", torch::kFloat16, 2},
    {"BF16", torch::kBFloat16, 2}, {"I64", torch::kInt64, 8},   {"I32", torch::kInt32, 4},
    {"I16", torch::kInt16, 2},     {"I8", torch::kInt8, 1},     {"U8", torch::kUInt8, 1},
    {"BOOL", torch::kBool, 1},
};

const DtypeInfo* DtypeByName(const std::string& name) {
  for (const DtypeInfo& d : kDtypes) {
    if (name == d.name) return &d;
  }
  return nullptr;
}

const DtypeInfo* DtypeByType(torch::ScalarType type) {
  for (const DtypeInfo& d : kDtypes) {
    if (type == d.type) return &d;
  }
  return nullptr;
}

// One header entry after validation.
struct Entry {
  std::string name;
  const DtypeInfo* dtype;
  std::vector<int64_t> shape;
  uint64_t begin, end;
};

// Returns `j` as a non-negative integer no larger than int64 max, or nullopt.
std::optional<uint64_t> NonNegativeInt(const Json& j) {
  if (j.is_number_unsigned()) {
    const uint64_t v = j.get<uint64_t>();
    if (v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return v;
    return std::nullopt;
  }
  if (j.is_number_integer() && j.get<int64_t>() >= 0) return j.get<int64_t>();
  return std::nullopt;
}

absl::StatusOr<Entry> ParseEntry(const std::string& path, const std::string& name,
                                 const Json& value, uint64_t data_size) {
  auto error = [&](auto&&... parts) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": tensor '", name, "': ", parts...));
  };
  if (!value.is_object()) return error("header entry is not an object");
  Entry e{name, nullptr, {}, 0, 0};
  auto dtype = value.find("dtype");
  if (dtype == value.end() || !dtype->is_string()) return error("missing string 'dtype'");
  e.dtype = DtypeByName(dtype->get<std::string>());
  if (e.dtype == nullptr) return error("unknown dtype '", dtype->get<std::string>(), "'");

  auto shape = value.find("shape");
  if (shape == value.end() || !shape->is_array()) return error("missing array 'shape'");
  uint64_t numel = 1;
  bool overflow = false;
  for (const Json& dim : *shape) {
    if (!dim.is_number_integer()) return error("shape ", shape->dump(), " is not all integers");
    std::optional<uint64_t> d = NonNegativeInt(dim);
    if (!d) return error("shape ", shape->dump(), " has a negative or huge dimension");
    e.shape.push_back(static_cast<int64_t>(*d));
    overflow |= __builtin_mul_overflow(numel, *d, &numel);
  }
  uint64_t nbytes = 0;
  overflow |= __builtin_mul_overflow(numel, e.dtype->size, &nbytes);
  if (overflow) return error("shape ", shape->dump(), " is too large");

  auto offsets = value.find("data_offsets");
  if (offsets == value.end() || !offsets->is_array() || offsets->size() != 2 ||
      !NonNegativeInt((*offsets)[0]) || !NonNegativeInt((*offsets)[1])) {
    return error("data_offsets must be [begin, end] with non-negative integers");
  }
  e.begin = *NonNegativeInt((*offsets)[0]);
  e.end = *NonNegativeInt((*offsets)[1]);
  if (e.end < e.begin) return error("data_offsets [", e.begin, ", ", e.end, "] has end < begin");
  if (e.end - e.begin != nbytes) {
    return error("byte size ", e.end - e.begin, " does not match shape ", shape->dump(),
                 " and dtype ", e.dtype->name, " (", nbytes, " bytes)");
  }
  if (e.end > data_size) {
    return error("data_offsets [", e.begin, ", ", e.end, "] are beyond the data region (",
                 data_size, " bytes)");
  }
  return e;
}

absl::Status ParseMetadata(const std::string& path, const Json& value,
                           std::map<std::string, std::string>* metadata) {
  if (!value.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": __metadata__ is not an object"));
  }
  for (const auto& [key, v] : value.items()) {
    if (!v.is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": __metadata__ value for '", key, "' is not a string"));
    }
    (*metadata)[key] = v.get<std::string>();
  }
  return absl::OkStatus();
}

// Parses the header text: a JSON object without duplicate top-level keys.
absl::StatusOr<Json> ParseHeaderJson(const std::string& path, const std::string& text) {
  std::set<std::string> seen;
  std::string duplicate;
  auto on_event = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if (depth == 1 && event == Json::parse_event_t::key && duplicate.empty() &&
        !seen.insert(parsed.get<std::string>()).second) {
      duplicate = parsed.get<std::string>();
    }
    return true;
  };
  Json header;
  try {
    header = Json::parse(text, on_event);
  } catch (const Json::parse_error& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": header is not valid JSON: ", e.what()));
  }
  if (!header.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": header is not a JSON object"));
  }
  if (!duplicate.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": duplicate tensor name '", duplicate, "' in header"));
  }
  return header;
}

absl::StatusOr<SafetensorsFile> ReadImpl(const std::string& path) {
  RLHF_ASSIGN_OR_RETURN(std::unique_ptr<file::RandomAccessFile> file,
                        file::RandomAccessFile::Open(path));
  if (file->size() < 8) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": file is ", file->size(), " bytes, shorter than the 8-byte header length"));
  }
  uint64_t header_len = 0;
  RLHF_RETURN_IF_ERROR(file->Read(0, 8, &header_len));
  if (header_len > file->size() - 8) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": header length ", header_len,
                                                   " is beyond the end of the file (", file->size(),
                                                   " bytes)"));
  }
  std::string text(header_len, '\0');
  RLHF_RETURN_IF_ERROR(file->Read(8, header_len, text.data()));
  RLHF_ASSIGN_OR_RETURN(Json header, ParseHeaderJson(path, text));

  const uint64_t data_start = 8 + header_len;
  const uint64_t data_size = file->size() - data_start;
  SafetensorsFile result;
  std::vector<Entry> entries;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      RLHF_RETURN_IF_ERROR(ParseMetadata(path, value, &result.metadata));
      continue;
    }
    RLHF_ASSIGN_OR_RETURN(Entry entry, ParseEntry(path, name, value, data_size));
    entries.push_back(std::move(entry));
  }
  // File order; stable so that empty tensors keep their header order.
  std::stable_sort(entries.begin(), entries.end(),
                   [](const Entry& a, const Entry& b) { return a.begin < b.begin; });
  const Entry* previous = nullptr;
  for (const Entry& e : entries) {
    if (e.begin == e.end) continue;
    if (previous != nullptr && e.begin < previous->end) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensors '", previous->name, "' [", previous->begin, ", ",
                       previous->end, ") and '", e.name, "' [", e.begin, ", ", e.end, ") overlap"));
    }
    previous = &e;
  }
  for (const Entry& e : entries) {
    torch::Tensor t = torch::empty(e.shape, torch::TensorOptions().dtype(e.dtype->type));
    RLHF_RETURN_IF_ERROR(file->Read(data_start + e.begin, e.end - e.begin, t.data_ptr()));
    result.tensors.emplace_back(e.name, std::move(t));
  }
  return result;
}

absl::Status ValidateForWrite(const std::string& path, const NamedTensors& tensors) {
  std::set<std::string> names;
  for (const auto& [name, t] : tensors) {
    auto error = [&, &name = name](auto&&... parts) {
      return absl::InvalidArgumentError(
          absl::StrCat("writing ", path, ": tensor '", name, "': ", parts...));
    };
    if (name.empty() || name == "__metadata__") return error("reserved or empty name");
    if (!names.insert(name).second) return error("duplicate name");
    if (!t.defined()) return error("undefined tensor");
    if (DtypeByType(t.scalar_type()) == nullptr) {
      return error("unsupported dtype ", c10::toString(t.scalar_type()));
    }
  }
  return absl::OkStatus();
}

absl::Status WriteImpl(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata) {
  RLHF_RETURN_IF_ERROR(ValidateForWrite(path, tensors));
  Json header = Json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    const DtypeInfo* dtype = DtypeByType(t.scalar_type());
    const uint64_t nbytes = static_cast<uint64_t>(t.numel()) * dtype->size;
    header[name] = {{"dtype", dtype->name},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t header_len = text.size();

  RLHF_ASSIGN_OR_RETURN(std::unique_ptr<file::AtomicFileWriter> writer,
                        file::AtomicFileWriter::Create(path));
  RLHF_RETURN_IF_ERROR(writer->Append(&header_len, sizeof(header_len)));
  RLHF_RETURN_IF_ERROR(writer->Append(text.data(), text.size()));
  for (const auto& [name, t] : tensors) {
    // One tensor at a time on the CPU, so a GPU model is never copied whole.
    torch::Tensor cpu = t.detach().to(torch::kCPU).contiguous();
    RLHF_RETURN_IF_ERROR(writer->Append(cpu.data_ptr(), cpu.numel() * cpu.element_size()));
  }
  return writer->Commit();
}

}  // namespace

absl::StatusOr<SafetensorsFile> ReadSafetensors(const std::string& path) {
  return status::CatchExceptions(absl::StrCat("reading ", path), [&] { return ReadImpl(path); });
}

absl::Status WriteSafetensors(const std::string& path, const NamedTensors& tensors,
                              const std::map<std::string, std::string>& metadata) {
  return status::CatchExceptions(absl::StrCat("writing ", path),
                                   [&] { return WriteImpl(path, tensors, metadata); });
}

}  // namespace rlhf::checkpoint
