#include "common/checkpoint/hf.h"

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/checkpoint/internal/hf_config.h"
#include "common/file/file.h"
#include "common/status/exception.h"
#include "common/checkpoint/safetensors.h"
#include "common/status/status_macros.h"

namespace rlhf::checkpoint {
namespace {

constexpr char kConfigFile[] = "config.json";
constexpr char kWeightsFile[] = "model.safetensors";
constexpr char kIndexFile[] = "model.safetensors.index.json";

std::string JoinPath(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  return dir.back() == '/' ? dir + name : absl::StrCat(dir, "/", name);
}

// Our parameter name -> the Hugging Face tensor name.
std::string HfName(const std::string& name) {
  if (name == "lm_head.weight" || name == "score.weight") return name;
  return "model." + name;
}

std::string ShapeString(torch::IntArrayRef shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// The safetensors files of a directory. `weight_map` (tensor -> file name) is empty for a
// single model.safetensors.
struct WeightFiles {
  std::vector<std::string> files;
  std::map<std::string, std::string> weight_map;
};

absl::StatusOr<WeightFiles> ReadIndex(const std::string& path) {
  RLHF_ASSIGN_OR_RETURN(std::string text, file::ReadFileToString(path));
  auto error = [&](const std::string& message) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", message));
  };
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    return error(absl::StrCat("not valid JSON: ", e.what()));
  }
  if (!json.is_object() || !json.contains("weight_map") || !json["weight_map"].is_object()) {
    return error("expected an object with a 'weight_map' object");
  }
  WeightFiles result;
  std::set<std::string> files;
  for (const auto& [name, file] : json["weight_map"].items()) {
    if (!file.is_string()) return error(absl::StrCat("weight_map['", name, "'] is not a string"));
    const std::string file_name = file.get<std::string>();
    // Shards live in the directory itself: no path may lead elsewhere.
    if (file_name.empty() || absl::StrContains(file_name, "/") || file_name == "..") {
      return error(absl::StrCat("weight_map['", name, "'] = '", file_name,
                                "' is not a file name in this directory"));
    }
    result.weight_map[name] = file_name;
    if (files.insert(file_name).second) result.files.push_back(file_name);
  }
  return result;
}

absl::StatusOr<WeightFiles> FindWeightFiles(const std::string& dir) {
  if (file::IsRegularFile(JoinPath(dir, kWeightsFile))) {
    return WeightFiles{{kWeightsFile}, {}};
  }
  if (file::IsRegularFile(JoinPath(dir, kIndexFile))) {
    return ReadIndex(JoinPath(dir, kIndexFile));
  }
  return absl::NotFoundError(absl::StrCat(dir, ": no ", kWeightsFile, " and no ", kIndexFile));
}

// Copies safetensors tensors into the parameters of one model, checking names and shapes.
// Not thread-safe.
class ParameterLoader {
 public:
  ParameterLoader(const model::Llama& model, const WeightFiles& files)
      : files_(files), tied_(model->config().tie_embeddings) {
    for (const auto& p : model->named_parameters()) params_.emplace(HfName(p.key()), p.value());
  }

  // Loads every tensor of `dir`/`file_name`.
  absl::Status LoadFile(const std::string& dir, const std::string& file_name) {
    const std::string path = JoinPath(dir, file_name);
    RLHF_ASSIGN_OR_RETURN(SafetensorsFile file, ReadSafetensors(path));
    torch::NoGradGuard no_grad;
    for (const auto& [name, tensor] : file.tensors) {
      RLHF_RETURN_IF_ERROR(LoadTensor(path, file_name, name, tensor));
    }
    return absl::OkStatus();
  }

  // Returns an error naming the first parameter that no file provided.
  absl::Status CheckComplete(const std::string& dir) const {
    std::vector<std::string> missing;
    for (const auto& [name, param] : params_) {
      if (loaded_.count(name) == 0) missing.push_back(name);
    }
    if (missing.empty()) return absl::OkStatus();
    auto it = files_.weight_map.find(missing[0]);
    const std::string where = files_.weight_map.empty()       ? JoinPath(dir, kWeightsFile)
                              : it == files_.weight_map.end() ? JoinPath(dir, kIndexFile)
                                                              : JoinPath(dir, it->second);
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": missing tensor '", missing[0], "'",
        missing.size() > 1 ? absl::StrCat(" (and ", missing.size() - 1, " more)") : ""));
  }

 private:
  absl::Status LoadTensor(const std::string& path, const std::string& file_name,
                          const std::string& name, const torch::Tensor& tensor) {
    auto error = [&](auto&&... parts) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": ", parts...));
    };
    // Non-persistent RoPE buffers that old transformers versions saved; ours are computed.
    if (absl::EndsWith(name, "rotary_emb.inv_freq")) return absl::OkStatus();
    // A tied checkpoint may still carry a copy of the embedding as lm_head.
    if (tied_ && name == "lm_head.weight") return absl::OkStatus();
    auto param = params_.find(name);
    if (param == params_.end()) return error("unexpected tensor '", name, "'");
    if (!files_.weight_map.empty()) {
      auto listed = files_.weight_map.find(name);
      if (listed == files_.weight_map.end() || listed->second != file_name) {
        return error("unexpected tensor '", name, "' (", kIndexFile,
                     " does not list it in this file)");
      }
    }
    if (!loaded_.insert(name).second) {
      return error("duplicate tensor '", name, "' (already loaded from another file)");
    }
    if (!tensor.sizes().equals(param->second.sizes())) {
      return error("tensor '", name, "' has shape ", ShapeString(tensor.sizes()), ", expected ",
                   ShapeString(param->second.sizes()));
    }
    const torch::ScalarType dtype = tensor.scalar_type();
    if (dtype != torch::kFloat32 && dtype != torch::kFloat16 && dtype != torch::kBFloat16) {
      return error("tensor '", name, "' has dtype ", c10::toString(dtype),
                   ", expected F32, F16 or BF16");
    }
    param->second.copy_(tensor);
    return absl::OkStatus();
  }

  const WeightFiles& files_;
  const bool tied_;
  std::map<std::string, torch::Tensor> params_;  // by HF name
  std::set<std::string> loaded_;
};

absl::StatusOr<model::Llama> LoadImpl(const std::string& dir) {
  RLHF_ASSIGN_OR_RETURN(model::LlamaConfig config, ReadHfConfig(dir));
  RLHF_ASSIGN_OR_RETURN(WeightFiles files, FindWeightFiles(dir));
  model::Llama model(config);
  ParameterLoader loader(model, files);
  for (const std::string& file : files.files) RLHF_RETURN_IF_ERROR(loader.LoadFile(dir, file));
  RLHF_RETURN_IF_ERROR(loader.CheckComplete(dir));
  return model;
}

absl::Status SaveImpl(const model::Llama& model, const std::string& dir, torch::ScalarType dtype) {
  if (dtype != torch::kFloat32 && dtype != torch::kBFloat16) {
    return absl::InvalidArgumentError(absl::StrCat("saving to ", dir, ": dtype ",
                                                   c10::toString(dtype),
                                                   " is not supported (Float or BFloat16)"));
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::ErrnoToStatus(ec.value(),
                               absl::StrCat("cannot create directory ", dir, ": ", ec.message()));
  }
  NamedTensors tensors;
  for (const auto& p : model->named_parameters()) {
    tensors.emplace_back(HfName(p.key()), p.value().detach().to(dtype));
  }
  // Weights first: a directory whose config.json exists has its weights.
  RLHF_RETURN_IF_ERROR(WriteSafetensors(JoinPath(dir, kWeightsFile), tensors, {{"format", "pt"}}));
  const std::string torch_dtype = dtype == torch::kFloat32 ? "float32" : "bfloat16";
  return file::WriteFileAtomically(JoinPath(dir, kConfigFile),
                                       internal::HfConfigJson(model->config(), torch_dtype));
}

}  // namespace

absl::StatusOr<model::LlamaConfig> ReadHfConfig(const std::string& dir) {
  const std::string path = JoinPath(dir, kConfigFile);
  RLHF_ASSIGN_OR_RETURN(std::string text, file::ReadFileToString(path));
  return internal::ParseHfConfig(text, path);
}

absl::StatusOr<model::Llama> LoadHfLlama(const std::string& dir) {
  return status::CatchExceptions(absl::StrCat("loading ", dir), [&] { return LoadImpl(dir); });
}

absl::Status SaveHfLlama(const model::Llama& model, const std::string& dir,
                         torch::ScalarType dtype) {
  return status::CatchExceptions(absl::StrCat("saving to ", dir),
                                   [&] { return SaveImpl(model, dir, dtype); });
}

}  // namespace rlhf::checkpoint
