#include "common/dist/gradient_sync.h"

#include <utility>

#include "common/status/status_macros.h"

namespace rlhf::dist {

GradientSync::GradientSync(ProcessGroup* group, std::vector<torch::Tensor> parameters,
                           int64_t bucket_bytes)
    : group_(group), parameters_(std::move(parameters)), bucket_bytes_(bucket_bytes) {}

absl::Status GradientSync::Sync() {
  num_buckets_last_sync_ = 0;
  if (group_->world_size() == 1) return absl::OkStatus();
  torch::NoGradGuard no_grad;

  // Which parameters have a gradient on some rank.
  const int64_t n = static_cast<int64_t>(parameters_.size());
  torch::Tensor defined = torch::zeros({n}, torch::kInt32);
  auto* flags = defined.data_ptr<int32_t>();
  for (int64_t i = 0; i < n; ++i) flags[i] = parameters_[i].grad().defined() ? 1 : 0;
  RLHF_RETURN_IF_ERROR(group_->AllReduceSum({defined}));

  // Buckets of consecutive such parameters with one (device, dtype), up to bucket_bytes_ each.
  std::vector<std::vector<torch::Tensor>> buckets;
  int64_t bucket_size = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (flags[i] == 0) continue;
    const torch::Tensor& p = parameters_[i];
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    const int64_t bytes = p.numel() * static_cast<int64_t>(p.element_size());
    const bool fits = !buckets.empty() && bucket_size + bytes <= bucket_bytes_ &&
                      buckets.back().front().device() == p.grad().device() &&
                      buckets.back().front().scalar_type() == p.grad().scalar_type();
    if (!fits) {
      buckets.emplace_back();
      bucket_size = 0;
    }
    buckets.back().push_back(p.grad());
    bucket_size += bytes;
  }
  // One collective per bucket: the group flattens a single-dtype list into one buffer.
  for (const std::vector<torch::Tensor>& bucket : buckets) {
    RLHF_RETURN_IF_ERROR(group_->AllReduceMean(bucket));
    ++num_buckets_last_sync_;
  }
  return absl::OkStatus();
}

}  // namespace rlhf::dist
