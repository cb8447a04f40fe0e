// The one way a unary callback RPC hands its work to a DynamicBatcher: submit the request's
// items, and when the batch has run, fill the response from this request's results and finish
// the reactor (or finish with the batch's / the queue's error). The reaction never blocks.
#ifndef RLHF_COMMON_GRPC_BATCHED_UNARY_H_
#define RLHF_COMMON_GRPC_BATCHED_UNARY_H_

#include <functional>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "common/batching/dynamic_batcher.h"
#include "common/grpc/status_util.h"

namespace rlhf::grpc_util {

// `fill` runs on the batcher's thread with this request's results, in item order.
template <typename In, typename Out>
void SubmitBatched(::grpc::ServerUnaryReactor* reactor,
                   batching::DynamicBatcher<In, Out>& batcher, std::vector<In> items,
                   std::function<void(std::vector<Out>&)> fill) {
  absl::Status submitted = batcher.Submit(
      std::move(items), [reactor, fill = std::move(fill)](absl::StatusOr<std::vector<Out>> r) {
        if (!r.ok()) {
          reactor->Finish(ToGrpcStatus(r.status()));
          return;
        }
        fill(*r);
        reactor->Finish(::grpc::Status::OK);
      });
  if (!submitted.ok()) reactor->Finish(ToGrpcStatus(submitted));
}

}  // namespace rlhf::grpc_util

#endif  // RLHF_COMMON_GRPC_BATCHED_UNARY_H_
