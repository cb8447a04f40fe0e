#include "common/model/named_parameters.h"

#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status/exception.h"

namespace rlhf::model {
namespace {

std::string ShapeString(c10::IntArrayRef sizes) {
  return absl::StrCat("[", absl::StrJoin(sizes, ", "), "]");
}

// Checks `tensors` against `params` (by name) without touching anything.
absl::Status CheckTensors(const std::map<std::string, torch::Tensor>& params,
                          const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
  std::set<std::string> seen;
  for (const auto& [name, tensor] : tensors) {
    auto param = params.find(name);
    if (param == params.end()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown parameter '", name, "'"));
    }
    if (!seen.insert(name).second) {
      return absl::InvalidArgumentError(absl::StrCat("parameter '", name, "' given twice"));
    }
    if (!tensor.defined()) {
      return absl::InvalidArgumentError(absl::StrCat("parameter '", name, "': undefined tensor"));
    }
    if (!tensor.sizes().equals(param->second.sizes())) {
      return absl::InvalidArgumentError(
          absl::StrCat("parameter '", name, "' has shape ", ShapeString(tensor.sizes()),
                       ", the model's is ", ShapeString(param->second.sizes())));
    }
    if (!torch::isFloatingType(tensor.scalar_type())) {
      return absl::InvalidArgumentError(absl::StrCat("parameter '", name, "' has dtype ",
                                                     c10::toString(tensor.scalar_type()),
                                                     ", expected a floating-point dtype"));
    }
  }
  if (seen.size() != params.size()) {
    std::vector<std::string> missing;
    for (const auto& [name, param] : params) {
      if (seen.count(name) == 0) missing.push_back(name);
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "missing parameter '", missing[0], "'",
        missing.size() > 1 ? absl::StrCat(" (and ", missing.size() - 1, " more)") : ""));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status LoadNamedParameters(
    Llama& model, const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
  try {
    std::map<std::string, torch::Tensor> params;
    for (const auto& p : model->named_parameters()) params.emplace(p.key(), p.value());
    if (absl::Status s = CheckTensors(params, tensors); !s.ok()) return s;
    torch::NoGradGuard no_grad;
    for (const auto& [name, tensor] : tensors) params.at(name).copy_(tensor);
    return absl::OkStatus();
  } catch (...) {
    return status::CurrentExceptionToStatus("loading parameters");
  }
}

}  // namespace rlhf::model
