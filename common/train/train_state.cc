#include "common/train/train_state.h"

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/checkpoint/hf.h"
#include "common/file/file.h"
#include "common/status/exception.h"
#include "common/status/status_macros.h"

namespace rlhf::train {

absl::Status SaveTrainState(const std::string& dir, const model::Llama& model,
                            const torch::optim::Optimizer& optimizer, const nlohmann::json& facts) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  RLHF_RETURN_IF_ERROR(checkpoint::SaveHfLlama(model, dir + "/model", torch::kFloat32));
  try {
    torch::serialize::OutputArchive archive;
    optimizer.save(archive);
    archive.save_to(dir + "/optimizer.pt");
  } catch (...) {
    return status::CurrentExceptionToStatus(absl::StrCat("saving ", dir, "/optimizer.pt"));
  }
  return file::WriteFileAtomically(dir + "/trainer.json", facts.dump(2) + "\n");
}

absl::StatusOr<nlohmann::json> RestoreTrainState(const std::string& dir, model::Llama& model,
                                                 torch::optim::Optimizer& optimizer) {
  std::ifstream in(dir + "/trainer.json");
  if (!in) return absl::NotFoundError(absl::StrCat("no ", dir, "/trainer.json"));
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("step") ||
      !j["step"].is_number_integer()) {
    return absl::InvalidArgumentError(absl::StrCat(dir, "/trainer.json is malformed"));
  }
  RLHF_ASSIGN_OR_RETURN(model::Llama saved, checkpoint::LoadHfLlama(dir + "/model"));
  {
    torch::NoGradGuard no_grad;
    auto src = saved->named_parameters();
    auto dst = model->named_parameters();
    if (src.size() != dst.size()) {
      return absl::FailedPreconditionError(absl::StrCat(dir, "/model has another shape"));
    }
    for (auto& p : dst) {
      const torch::Tensor* s = src.find(p.key());
      if (s == nullptr || !s->sizes().equals(p.value().sizes())) {
        return absl::FailedPreconditionError(
            absl::StrCat(dir, "/model: parameter ", p.key(), " differs in shape"));
      }
      p.value().copy_(*s);
    }
  }
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(dir + "/optimizer.pt");
    optimizer.load(archive);
  } catch (...) {
    return status::CurrentExceptionToStatus(absl::StrCat("reading ", dir, "/optimizer.pt"),
                                            absl::StatusCode::kDataLoss);
  }
  return j;
}

}  // namespace rlhf::train
