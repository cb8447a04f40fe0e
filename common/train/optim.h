// The optimisation recipe the training jobs share (`rlhf train-rm`, `rlhf sft`): AdamW, a linear
// warm-up then cosine decay of the learning rate, grad-norm clipping, and a deterministic data
// order per (seed, epoch), so that a resumed run sees exactly the batches an uninterrupted one
// would.
#ifndef RLHF_COMMON_TRAIN_OPTIM_H_
#define RLHF_COMMON_TRAIN_OPTIM_H_

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"

namespace rlhf::train {

struct OptimOptions {
  double learning_rate = 1e-3;
  double min_lr_ratio = 0.1;  // the cosine decays to learning_rate * this
  double weight_decay = 0.01;
  int64_t warmup_steps = 10;
  int64_t total_steps = 100;  // optimizer steps (for the schedule)
  double max_grad_norm = 1.0;  // <= 0: no clipping
};
absl::Status Validate(const OptimOptions& options);

// The learning rate at optimizer step `step` (0-based): linear warm-up to learning_rate over
// warmup_steps, then cosine decay to learning_rate * min_lr_ratio at total_steps.
double ScheduledLearningRate(const OptimOptions& options, int64_t step);

std::unique_ptr<torch::optim::AdamW> MakeAdamW(const std::vector<torch::Tensor>& parameters,
                                               const OptimOptions& options);

// Sets the scheduled learning rate of `step`, clips the gradients of `parameters`, steps the
// optimizer. Returns the gradient norm before clipping.
double ApplyGradients(torch::optim::AdamW& optimizer, const std::vector<torch::Tensor>& parameters,
                      const OptimOptions& options, int64_t step);

// A permutation of [0, n) that depends only on (seed, epoch).
std::vector<int64_t> EpochOrder(int64_t n, uint64_t seed, int64_t epoch);

}  // namespace rlhf::train

#endif  // RLHF_COMMON_TRAIN_OPTIM_H_
