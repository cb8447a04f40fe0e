// Data-parallel gradient averaging, bucketed like torch DDP: after backward, the gradients of
// the parameter list are packed, in list order, into buckets of about `bucket_bytes` (one
// (device, dtype) per bucket), each bucket is flattened into one contiguous buffer, all-reduced
// in ONE collective, divided by the world size and copied back. Fewer, larger messages instead of
// one collective per tensor.
//
// Parameters without a gradient count as zero gradients, so every rank issues the same
// collectives whatever its micro-batches touched: a rank whose grad is undefined gets the
// averaged one. A parameter with no gradient on ANY rank keeps an undefined grad (as it would in a
// single process, so that AdamW skips it there too); finding those costs one small all-reduce of
// per-parameter flags per Sync.
//
// Unlike DDP the reduction does not overlap with backward (it starts when Sync is called).
//
// Thread-compatible; uses the group, so not concurrently with other collectives on it.
#ifndef RLHF_COMMON_DIST_GRADIENT_SYNC_H_
#define RLHF_COMMON_DIST_GRADIENT_SYNC_H_

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "common/dist/process_group.h"

namespace rlhf::dist {

// DDP's default bucket_cap_mb.
inline constexpr int64_t kDefaultBucketBytes = int64_t{25} << 20;

class GradientSync {
 public:
  // `group` is not owned and must outlive this object. `parameters` must be the same list (same
  // order, shapes, dtypes) on every rank. REQUIRES: bucket_bytes > 0 (a parameter larger than a
  // bucket gets a bucket of its own).
  GradientSync(ProcessGroup* group, std::vector<torch::Tensor> parameters,
               int64_t bucket_bytes = kDefaultBucketBytes);

  GradientSync(const GradientSync&) = delete;
  GradientSync& operator=(const GradientSync&) = delete;

  // Replaces every parameter's grad with the mean over the ranks. REQUIRES: backward done on
  // every rank. Errors are the group's (the grads are then unspecified). No-op for world_size 1.
  absl::Status Sync();

  // Collectives the last Sync issued for the gradients (the flags' all-reduce not counted).
  int num_buckets_last_sync() const { return num_buckets_last_sync_; }

 private:
  ProcessGroup* const group_;
  const std::vector<torch::Tensor> parameters_;
  const int64_t bucket_bytes_;
  int num_buckets_last_sync_ = 0;
};

}  // namespace rlhf::dist

#endif  // RLHF_COMMON_DIST_GRADIENT_SYNC_H_
