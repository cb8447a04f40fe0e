// The collectives a data-parallel job needs (all-reduce, broadcast from rank 0, barrier, and a
// byte broadcast for shipping serialized batches), over LibTorch's c10d, behind a Status API:
// c10d throws, we do not.
//
//  - world_size 1: no c10d object exists and every collective is an immediate no-op, so the
//    single-process path costs nothing.
//  - world_size > 1: rank 0 serves a c10d::TCPStore on master_port, every rank connects to it,
//    and a c10d::ProcessGroupGloo carries CPU tensors. Where this LibTorch was built with NCCL
//    (USE_C10D_NCCL), CUDA is available and options.use_nccl is set, a ProcessGroupNCCL carries
//    CUDA tensors (its communicator is made at the first CUDA collective, on the tensors'
//    device: set the current device to local_rank first). Without NCCL, CUDA tensors are staged
//    through host memory and Gloo.
//
// Failure: joining and every collective are bounded by options.timeout. A rank that never joins,
// dies, or stops calling makes the others' calls fail (DEADLINE_EXCEEDED on a timeout,
// UNAVAILABLE when a peer's connection breaks) rather than hang or crash. After a failed
// collective the ranks may disagree on what was exchanged, so the group is broken: every later
// call returns FAILED_PRECONDITION with the first error. A broken job restarts (all ranks).
//
// Contract of every collective (as in c10d): all ranks call the same collectives in the same
// order, with tensor lists of the same length, shapes and dtypes. Lists are coalesced: the
// tensors of one (device, dtype) are flattened into one buffer and exchanged in ONE c10d call,
// so passing many small tensors at once is cheap.
//
// Thread-compatible: one thread at a time per object (collectives are ordered). Several objects
// (e.g. the ranks of a test, each in a thread) may be used concurrently.
#ifndef RLHF_COMMON_DIST_PROCESS_GROUP_H_
#define RLHF_COMMON_DIST_PROCESS_GROUP_H_

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/dist/dist_options.h"

namespace rlhf::dist {

enum class ReduceOp { kSum, kMean, kMin, kMax };

class ProcessGroup {
 public:
  // Joins the group described by `options` (Validate'd here): returns when all world_size
  // ranks have joined, or fails once options.timeout has passed (DEADLINE_EXCEEDED), or when
  // the store cannot be served or reached (UNAVAILABLE). Every rank must call it.
  static absl::StatusOr<std::unique_ptr<ProcessGroup>> Create(const DistOptions& options);
  // The single-process group (rank 0 of 1).
  static std::unique_ptr<ProcessGroup> CreateSingle();
  ~ProcessGroup();

  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  // Rank 0: the one rank that writes checkpoints, logs and other files.
  bool is_main() const { return rank_ == 0; }
  // "none" (world_size 1), "gloo" or "gloo+nccl".
  std::string backend() const;

  // Reduces each tensor element-wise over the ranks, in place; every rank ends with the result.
  // kMean needs floating-point tensors (else INVALID_ARGUMENT, before any communication).
  absl::Status AllReduce(absl::Span<const torch::Tensor> tensors, ReduceOp op);
  absl::Status AllReduceSum(absl::Span<const torch::Tensor> tensors) {
    return AllReduce(tensors, ReduceOp::kSum);
  }
  absl::Status AllReduceMean(absl::Span<const torch::Tensor> tensors) {
    return AllReduce(tensors, ReduceOp::kMean);
  }
  // Overwrites each tensor with rank 0's, in place (e.g. the initial parameters).
  absl::Status Broadcast(absl::Span<const torch::Tensor> tensors);
  // Rank 0's `*bytes` replaces `*bytes` on every rank (the others' input is ignored; any size).
  absl::Status BroadcastBytes(std::string* bytes);
  // Returns once every rank has called it.
  absl::Status Barrier();

  // Agreement helpers, for a step that may fail on some ranks only (a local file missing) and
  // must not leave the others waiting in the next collective. Each is one collective.
  //
  // `local` if it is an error; else FAILED_PRECONDITION if another rank's `local` was an error;
  // else OK. The same verdict (ok or not) on every rank.
  absl::Status AllOk(const absl::Status& local);
  // OK if `value` is the same on every rank, else FAILED_PRECONDITION naming `what` on every
  // rank (e.g. a fingerprint of the training data, or the step a checkpoint restored).
  absl::Status CheckSameOnAllRanks(int64_t value, absl::string_view what);

 private:
  struct Impl;
  ProcessGroup(int rank, int world_size, std::unique_ptr<Impl> impl);
  // Runs one c10d collective on `tensor` (contiguous, one device) and waits for it.
  absl::Status Run(const torch::Tensor& tensor, bool broadcast, ReduceOp op);
  // Coalesces `tensors` by (device, dtype) and runs one collective per group.
  absl::Status Coalesced(absl::Span<const torch::Tensor> tensors, bool broadcast, ReduceOp op);

  const int rank_;
  const int world_size_;
  std::unique_ptr<Impl> impl_;  // null when world_size_ == 1
  absl::Status broken_;         // the first failed collective's error
};

}  // namespace rlhf::dist

#endif  // RLHF_COMMON_DIST_PROCESS_GROUP_H_
