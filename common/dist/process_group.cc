#include "common/dist/process_group.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <exception>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/dist/internal/c10d_compat.h"
#include "common/status/exception.h"
#include "common/status/status_macros.h"

// Debian's LibTorch defines USE_C10D_GLOO (torch_cpu's interface definitions) and not
// USE_C10D_NCCL; a CUDA build of LibTorch defines both.
#ifndef USE_C10D_GLOO
#error "common/dist needs a LibTorch built with Gloo (USE_C10D_GLOO)"
#endif
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace rlhf::dist {

struct ProcessGroup::Impl {
  std::chrono::milliseconds timeout{0};
  // Declared first, destroyed last: the groups talk through it while they shut down.
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
#ifdef USE_C10D_NCCL
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;  // null without CUDA or with !use_nccl
#endif

  bool has_nccl() const {
#ifdef USE_C10D_NCCL
    return static_cast<bool>(nccl);
#else
    return false;
#endif
  }
};

namespace {

// The exception in flight, as a Status: timeouts are DEADLINE_EXCEEDED, everything else
// (a peer's connection closed, a store that cannot be reached or served) UNAVAILABLE. Our own
// argument checks run before c10d is called, so what c10d throws is about the peers.
absl::Status CurrentExceptionToStatus(absl::string_view context) {
  absl::Status s = status::CurrentExceptionToStatus(context, absl::StatusCode::kUnavailable);
  std::string lower(s.message());
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  if (absl::StrContains(lower, "timed out") || absl::StrContains(lower, "timeout")) {
    return absl::DeadlineExceededError(s.message());
  }
  return s;
}

c10d::ReduceOp ToC10d(ReduceOp op) {
  switch (op) {
    case ReduceOp::kMin:
      return c10d::ReduceOp::MIN;
    case ReduceOp::kMax:
      return c10d::ReduceOp::MAX;
    case ReduceOp::kSum:
    case ReduceOp::kMean:  // Gloo has no AVG: a sum, divided afterwards
      break;
  }
  return c10d::ReduceOp::SUM;
}

bool IsLoopback(const std::string& host) {
  return host == "localhost" || absl::StartsWith(host, "127.") || host == "::1";
}

std::shared_ptr<::gloo::transport::Device> GlooDevice(const DistOptions& o) {
  if (!o.gloo_interface.empty()) {
    return c10d::ProcessGroupGloo::createDeviceForInterface(o.gloo_interface);
  }
  if (IsLoopback(o.master_addr)) {
    return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  }
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

#ifdef USE_C10D_NCCL
// NCCL's Work::wait() does not time out unless NCCL_BLOCKING_WAIT is set in the environment,
// so completion is polled against our own deadline; a timed-out collective is aborted (its
// communicator is unusable afterwards, which the broken state reflects).
absl::Status WaitPolling(c10d::Work& work, std::chrono::milliseconds timeout) {
  const absl::Time deadline = absl::Now() + absl::FromChrono(timeout);
  while (!work.isCompleted()) {
    if (absl::Now() > deadline) {
      work.abort();
      return absl::DeadlineExceededError(
          absl::StrCat("NCCL collective timed out after ", timeout.count(), " ms"));
    }
    absl::SleepFor(absl::Microseconds(20));
  }
  work.wait();  // rethrows an NCCL error; orders the current stream after the collective
  return absl::OkStatus();
}
#endif

}  // namespace

ProcessGroup::ProcessGroup(int rank, int world_size, std::unique_ptr<Impl> impl)
    : rank_(rank), world_size_(world_size), impl_(std::move(impl)) {}

ProcessGroup::~ProcessGroup() = default;

std::unique_ptr<ProcessGroup> ProcessGroup::CreateSingle() {
  return std::unique_ptr<ProcessGroup>(new ProcessGroup(0, 1, nullptr));
}

absl::StatusOr<std::unique_ptr<ProcessGroup>> ProcessGroup::Create(const DistOptions& o) {
  RLHF_RETURN_IF_ERROR(Validate(o));
  if (o.world_size == 1) return CreateSingle();
  auto impl = std::make_unique<Impl>();
  impl->timeout = absl::ToChronoMilliseconds(o.timeout);
  const std::string where = absl::StrCat("rank ", o.rank, " of ", o.world_size, " joining via ",
                                         o.master_addr, ":", o.master_port);
  try {
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<uint16_t>(o.master_port);
    store_options.isServer = o.rank == 0;
    store_options.numWorkers = o.world_size;
    store_options.waitWorkers = false;  // the Gloo rendezvous below waits for everyone
    store_options.timeout = impl->timeout;
    impl->store = c10::make_intrusive<c10d::TCPStore>(o.master_addr, store_options);

    auto gloo_options = c10d::ProcessGroupGloo::Options::create(impl->timeout);
    gloo_options->devices.push_back(GlooDevice(o));
    impl->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(
        c10::make_intrusive<c10d::PrefixStore>("gloo/", impl->store), o.rank, o.world_size,
        gloo_options);
#ifdef USE_C10D_NCCL
    if (o.use_nccl && torch::cuda::is_available()) {
      auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
      nccl_options->timeout = impl->timeout;
      impl->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(
          c10::make_intrusive<c10d::PrefixStore>("nccl/", impl->store), o.rank, o.world_size,
          nccl_options);
    }
#endif
  } catch (...) {
    return CurrentExceptionToStatus(where);
  }
  return std::unique_ptr<ProcessGroup>(new ProcessGroup(o.rank, o.world_size, std::move(impl)));
}

std::string ProcessGroup::backend() const {
  if (impl_ == nullptr) return "none";
  return impl_->has_nccl() ? "gloo+nccl" : "gloo";
}

absl::Status ProcessGroup::Run(const torch::Tensor& tensor, bool broadcast, ReduceOp op) {
  std::vector<at::Tensor> tensors = {tensor};
  internal::CollectiveGroup* group = impl_->gloo.get();
  bool nccl = false;
#ifdef USE_C10D_NCCL
  if (tensor.is_cuda() && impl_->nccl) {
    group = impl_->nccl.get();
    nccl = true;
  }
#endif
  try {
    c10::intrusive_ptr<c10d::Work> work;
    if (broadcast) {
      c10d::BroadcastOptions options;
      options.rootRank = 0;
      work = group->broadcast(tensors, options);
    } else {
      c10d::AllreduceOptions options;
      options.reduceOp = ToC10d(op);
      work = group->allreduce(tensors, options);
    }
#ifdef USE_C10D_NCCL
    if (nccl) return WaitPolling(*work, impl_->timeout);
#endif
    (void)nccl;
    work->wait();  // Gloo: throws once the context's timeout has passed
  } catch (...) {
    return CurrentExceptionToStatus(
        absl::StrCat("rank ", rank_, ": ", broadcast ? "broadcast" : "all-reduce"));
  }
  return absl::OkStatus();
}

absl::Status ProcessGroup::Coalesced(absl::Span<const torch::Tensor> tensors, bool broadcast,
                                     ReduceOp op) {
  if (!broken_.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("process group broken by an earlier error: ", broken_.message()));
  }
  for (const torch::Tensor& t : tensors) {
    if (!t.defined() || t.is_sparse()) {
      return absl::InvalidArgumentError("collectives take defined, dense tensors");
    }
    if (!broadcast && op == ReduceOp::kMean && !c10::isFloatingType(t.scalar_type())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "a mean all-reduce needs floating-point tensors, not ", c10::toString(t.scalar_type())));
    }
  }
  if (world_size_ == 1) return absl::OkStatus();

  torch::NoGradGuard no_grad;
  // Groups of (device, dtype), in order of first appearance: the same on every rank.
  std::vector<std::pair<torch::Device, torch::ScalarType>> keys;
  std::vector<std::vector<torch::Tensor>> groups;
  for (const torch::Tensor& t : tensors) {
    const std::pair<torch::Device, torch::ScalarType> key(t.device(), t.scalar_type());
    auto it = std::find(keys.begin(), keys.end(), key);
    if (it == keys.end()) {
      keys.push_back(key);
      groups.emplace_back();
      it = keys.end() - 1;
    }
    groups[it - keys.begin()].push_back(t.detach());
  }
  for (size_t g = 0; g < groups.size(); ++g) {
    const std::vector<torch::Tensor>& members = groups[g];
    int64_t numel = 0;
    for (const torch::Tensor& t : members) numel += t.numel();
    if (numel == 0) continue;
    // Where the exchange happens: CUDA tensors stay on their device with NCCL; without it
    // they are staged through host memory for Gloo.
    const torch::Device device =
        keys[g].first.is_cuda() && impl_->has_nccl() ? keys[g].first : torch::Device(torch::kCPU);
    const bool in_place =
        members.size() == 1 && members[0].is_contiguous() && members[0].device() == device;
    torch::Tensor buffer;
    if (in_place) {
      buffer = members[0];
    } else {
      std::vector<torch::Tensor> flat;
      flat.reserve(members.size());
      for (const torch::Tensor& t : members) flat.push_back(t.reshape({-1}).to(device));
      buffer = torch::cat(flat);
    }
    absl::Status s = Run(buffer, broadcast, op);
    if (!s.ok()) {
      broken_ = s;
      return s;
    }
    if (!broadcast && op == ReduceOp::kMean) buffer.div_(world_size_);
    if (!in_place) {
      int64_t offset = 0;
      for (const torch::Tensor& t : members) {
        t.copy_(buffer.narrow(0, offset, t.numel()).view(t.sizes()));
        offset += t.numel();
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ProcessGroup::AllReduce(absl::Span<const torch::Tensor> tensors, ReduceOp op) {
  return Coalesced(tensors, /*broadcast=*/false, op);
}

absl::Status ProcessGroup::Broadcast(absl::Span<const torch::Tensor> tensors) {
  return Coalesced(tensors, /*broadcast=*/true, ReduceOp::kSum);
}

absl::Status ProcessGroup::BroadcastBytes(std::string* bytes) {
  torch::Tensor size =
      torch::tensor({rank_ == 0 ? static_cast<int64_t>(bytes->size()) : int64_t{0}}, torch::kInt64);
  RLHF_RETURN_IF_ERROR(Broadcast({size}));
  if (world_size_ == 1) return absl::OkStatus();
  const int64_t n = size.item<int64_t>();
  if (rank_ != 0) bytes->resize(static_cast<size_t>(n));
  if (n == 0) return absl::OkStatus();
  // In place, on the string's own buffer (contiguous, on the host).
  return Broadcast({torch::from_blob(bytes->data(), {n}, torch::kUInt8)});
}

absl::Status ProcessGroup::Barrier() {
  if (!broken_.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("process group broken by an earlier error: ", broken_.message()));
  }
  if (world_size_ == 1) return absl::OkStatus();
  try {
    impl_->gloo->barrier()->wait();
  } catch (...) {
    broken_ = CurrentExceptionToStatus(absl::StrCat("rank ", rank_, ": barrier"));
    return broken_;
  }
  return absl::OkStatus();
}

absl::Status ProcessGroup::AllOk(const absl::Status& local) {
  torch::Tensor failed = torch::tensor({local.ok() ? int64_t{0} : int64_t{1}}, torch::kInt64);
  const absl::Status s = AllReduceSum({failed});
  if (!local.ok()) return local;
  RLHF_RETURN_IF_ERROR(s);
  const int64_t others = failed.item<int64_t>();
  if (others > 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(others, " other rank(s) of ", world_size_, " failed (see their logs)"));
  }
  return absl::OkStatus();
}

absl::Status ProcessGroup::CheckSameOnAllRanks(int64_t value, absl::string_view what) {
  // max(v) and max(~v) = ~min(v) in one collective (~v cannot overflow, unlike -v).
  torch::Tensor t = torch::tensor({value, ~value}, torch::kInt64);
  RLHF_RETURN_IF_ERROR(AllReduce({t}, ReduceOp::kMax));
  const int64_t max = t[0].item<int64_t>();
  const int64_t min = ~t[1].item<int64_t>();
  if (max != min) {
    return absl::FailedPreconditionError(absl::StrCat(what, " differs between ranks (from ", min,
                                                      " to ", max, "; this rank: ", value, ")"));
  }
  return absl::OkStatus();
}

}  // namespace rlhf::dist
