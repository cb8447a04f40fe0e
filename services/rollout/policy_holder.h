// The rollout worker's current policy: a GenerationEngine and the version of the weights it
// holds, shared by the Generate service (jobs) and the PPO loop (which installs new versions
// between its batches).
//
// A caller takes one Snapshot() per generation batch and keeps it for the whole batch, so a
// batch never sees half an update; an engine that was swapped out lives on until the last
// batch that holds it ends.
//
// Thread-safe.
#ifndef RLHF_SERVICES_ROLLOUT_POLICY_HOLDER_H_
#define RLHF_SERVICES_ROLLOUT_POLICY_HOLDER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/model/generation.h"

namespace rlhf::rollout {

class PolicyHolder {
 public:
  // A policy version as one unit: the engine and the version its weights are.
  struct Policy {
    std::shared_ptr<const model::GenerationEngine> engine;
    int64_t version = -1;
  };

  // Returns a holder whose first policy is an engine built from `model`'s weights (copied:
  // `model` is not kept), reported as `version` (-1 = unknown, e.g. a checkpoint loaded from
  // disk). Errors: those of GenerationEngine::Create.
  static absl::StatusOr<std::shared_ptr<PolicyHolder>> Create(const model::Llama& model,
                                                              int64_t version);

  PolicyHolder(const PolicyHolder&) = delete;
  PolicyHolder& operator=(const PolicyHolder&) = delete;

  // Returns the current engine and its version (never a null engine).
  Policy Snapshot() const ABSL_LOCKS_EXCLUDED(mu_);
  int64_t version() const ABSL_LOCKS_EXCLUDED(mu_);

  // The architecture; the same for every version.
  const model::LlamaConfig& config() const { return config_; }

  // Makes `engine` the current policy. REQUIRES: engine != nullptr, with this holder's config.
  void Swap(std::shared_ptr<const model::GenerationEngine> engine, int64_t version)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Copies `tensors` (named as model::Llama's named_parameters()) into a staging Llama, builds
  // a new engine from it and swaps it in as `version`. The staging module is created on first
  // use and kept (one model's memory) for later versions. Calls are serialised; Snapshot()
  // is never blocked by one. Errors: those of model::LoadNamedParameters and
  // GenerationEngine::Create; the current policy is then unchanged.
  absl::Status Install(const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                       int64_t version) ABSL_LOCKS_EXCLUDED(staging_mu_, mu_);

  // Bytes of one version's parameters in float32 (an upper bound for a weight stream of this
  // architecture in float32, bfloat16 or float16).
  int64_t parameter_bytes() const { return parameter_bytes_; }

 private:
  PolicyHolder(std::shared_ptr<const model::GenerationEngine> engine, int64_t version,
               int64_t parameter_bytes);

  // Constant after construction.
  const model::LlamaConfig config_;
  const int64_t parameter_bytes_;

  // Serialises Install(); guards the staging module.
  absl::Mutex staging_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  model::Llama staging_ ABSL_GUARDED_BY(staging_mu_){nullptr};

  mutable absl::Mutex mu_;
  Policy current_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rlhf::rollout

#endif  // RLHF_SERVICES_ROLLOUT_POLICY_HOLDER_H_
