// A training job's checkpoint: the model (HF directory "model"), the optimizer state
// (optimizer.pt) and the trainer's own facts (trainer.json, e.g. the step), shared by the
// reward and SFT trainers.
#ifndef RLHF_COMMON_TRAIN_TRAIN_STATE_H_
#define RLHF_COMMON_TRAIN_TRAIN_STATE_H_

#include <torch/torch.h>

#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model/llama.h"

namespace rlhf::train {

// Writes the three parts into `dir` (created).
absl::Status SaveTrainState(const std::string& dir, const model::Llama& model,
                            const torch::optim::Optimizer& optimizer, const nlohmann::json& facts);

// Copies the saved parameters into `model` (same names and shapes, else FailedPrecondition),
// loads the optimizer state, and returns trainer.json (an object with an integer "step", else
// InvalidArgument).
absl::StatusOr<nlohmann::json> RestoreTrainState(const std::string& dir, model::Llama& model,
                                                 torch::optim::Optimizer& optimizer);

}  // namespace rlhf::train

#endif  // RLHF_COMMON_TRAIN_TRAIN_STATE_H_
