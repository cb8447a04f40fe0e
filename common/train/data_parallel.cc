#include "common/train/data_parallel.h"

#include <vector>

#include "common/status/status_macros.h"
#include "common/status/exception.h"

namespace rlhf::train {

absl::Status AgreeOnStatus(dist::ProcessGroup* group, const absl::Status& local) {
  if (WorldSize(group) == 1) return local;
  return group->AllOk(local);
}

absl::Status GuardedLocalStep(dist::ProcessGroup* group, absl::string_view what,
                              const std::function<void()>& fn) {
  return AgreeOnStatus(group, status::CatchExceptions(what, [&] {
                         fn();
                         return absl::OkStatus();
                       }));
}

absl::Status JoinDataParallel(dist::ProcessGroup* group, int64_t fingerprint, model::Llama& model) {
  if (WorldSize(group) == 1) return absl::OkStatus();
  RLHF_RETURN_IF_ERROR(group->CheckSameOnAllRanks(
      fingerprint, "the training data or options (every rank must be given the same)"));
  std::vector<torch::Tensor> state = model->parameters();
  for (const torch::Tensor& b : model->buffers()) state.push_back(b);
  return group->Broadcast(state);
}

}  // namespace rlhf::train
