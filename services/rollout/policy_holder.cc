#include "services/rollout/policy_holder.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging/logging.h"
#include "common/model/named_parameters.h"
#include "common/status/status_macros.h"
#include "common/status/exception.h"

namespace rlhf::rollout {

absl::StatusOr<std::shared_ptr<PolicyHolder>> PolicyHolder::Create(const model::Llama& model,
                                                                   int64_t version) {
  RLHF_ASSIGN_OR_RETURN(std::unique_ptr<model::GenerationEngine> engine,
                        model::GenerationEngine::Create(model));
  int64_t bytes = 0;
  for (const auto& p : model->parameters()) bytes += p.numel() * 4;
  return std::shared_ptr<PolicyHolder>(new PolicyHolder(std::move(engine), version, bytes));
}

PolicyHolder::PolicyHolder(std::shared_ptr<const model::GenerationEngine> engine, int64_t version,
                           int64_t parameter_bytes)
    : config_(engine->config()), parameter_bytes_(parameter_bytes) {
  current_ = Policy{std::move(engine), version};
}

PolicyHolder::Policy PolicyHolder::Snapshot() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

int64_t PolicyHolder::version() const {
  absl::MutexLock lock(&mu_);
  return current_.version;
}

void PolicyHolder::Swap(std::shared_ptr<const model::GenerationEngine> engine, int64_t version) {
  CHECK(engine != nullptr);
  Policy old;  // released outside the lock: freeing an engine is not free
  absl::MutexLock lock(&mu_);
  old = std::exchange(current_, Policy{std::move(engine), version});
}

absl::Status PolicyHolder::Install(
    const std::vector<std::pair<std::string, torch::Tensor>>& tensors, int64_t version) {
  absl::MutexLock lock(&staging_mu_);
  if (!staging_) {
    try {
      staging_ = model::Llama(config_);
    } catch (...) {
      return status::CurrentExceptionToStatus("creating the staging model");
    }
  }
  RLHF_RETURN_IF_ERROR(model::LoadNamedParameters(staging_, tensors));
  RLHF_ASSIGN_OR_RETURN(std::unique_ptr<model::GenerationEngine> engine,
                        model::GenerationEngine::Create(staging_));
  Swap(std::move(engine), version);
  return absl::OkStatus();
}

}  // namespace rlhf::rollout
