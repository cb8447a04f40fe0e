#include "common/train/optim.h"

#include <cmath>
#include <numeric>
#include <random>

#include "absl/strings/str_cat.h"

namespace rlhf::train {

absl::Status Validate(const OptimOptions& o) {
  auto bad = [](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("optimizer: ", what));
  };
  if (!(o.learning_rate > 0)) return bad("learning_rate must be > 0");
  if (!(o.min_lr_ratio >= 0 && o.min_lr_ratio <= 1)) return bad("min_lr_ratio must be in [0, 1]");
  if (!(o.weight_decay >= 0)) return bad("weight_decay must be >= 0");
  if (o.warmup_steps < 0) return bad("warmup_steps must be >= 0");
  if (o.total_steps <= 0) return bad("total_steps must be > 0");
  return absl::OkStatus();
}

double ScheduledLearningRate(const OptimOptions& o, int64_t step) {
  if (step < o.warmup_steps) {
    return o.learning_rate * static_cast<double>(step + 1) / static_cast<double>(o.warmup_steps);
  }
  const double span = static_cast<double>(std::max<int64_t>(1, o.total_steps - o.warmup_steps));
  const double progress = std::min(1.0, static_cast<double>(step - o.warmup_steps) / span);
  const double cosine = 0.5 * (1.0 + std::cos(M_PI * progress));
  return o.learning_rate * (o.min_lr_ratio + (1.0 - o.min_lr_ratio) * cosine);
}

std::unique_ptr<torch::optim::AdamW> MakeAdamW(const std::vector<torch::Tensor>& parameters,
                                               const OptimOptions& o) {
  return std::make_unique<torch::optim::AdamW>(
      parameters, torch::optim::AdamWOptions(o.learning_rate).weight_decay(o.weight_decay));
}

double ApplyGradients(torch::optim::AdamW& optimizer, const std::vector<torch::Tensor>& parameters,
                      const OptimOptions& o, int64_t step) {
  const double lr = ScheduledLearningRate(o, step);
  for (auto& group : optimizer.param_groups()) {
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
  }
  const double norm = torch::nn::utils::clip_grad_norm_(
      parameters, o.max_grad_norm > 0 ? o.max_grad_norm : std::numeric_limits<double>::max());
  optimizer.step();
  return norm;
}

std::vector<int64_t> EpochOrder(int64_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(epoch));
  // Fisher-Yates with our own draws: std::shuffle's use of the engine is not specified.
  for (int64_t i = n - 1; i > 0; --i) std::swap(order[i], order[rng() % (i + 1)]);
  return order;
}

}  // namespace rlhf::train
