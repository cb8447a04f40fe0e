// RPC metrics for every gRPC server, recorded in one place by a server interceptor:
//   rlhf_rpc_requests_total{method, code}   counter
//   rlhf_rpc_latency_seconds{method}         histogram (from the request's arrival to its status)
// `method` is the full gRPC method name ("/rlhf.v1.Reward/Score"), a bounded set.
#ifndef RLHF_COMMON_METRICS_RPC_METRICS_H_
#define RLHF_COMMON_METRICS_RPC_METRICS_H_

#include <grpcpp/support/server_interceptor.h>
#include <prometheus/registry.h>

#include <memory>

namespace rlhf::metrics {

// Creates the interceptor factory to hand to grpc::ServerBuilder::experimental()
// .SetInterceptorCreators(). Registers the families in `registry` once, here.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeRpcMetricsFactory(
    prometheus::Registry& registry);

}  // namespace rlhf::metrics

#endif  // RLHF_COMMON_METRICS_RPC_METRICS_H_
