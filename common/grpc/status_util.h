// Conversions between absl::Status and grpc::Status, done once at the edge of every service
// and client (the canonical codes are the same numbers in both).
#ifndef RLHF_COMMON_GRPC_STATUS_UTIL_H_
#define RLHF_COMMON_GRPC_STATUS_UTIL_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace rlhf::grpc_util {

::grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const ::grpc::Status& status);

}  // namespace rlhf::grpc_util

#endif  // RLHF_COMMON_GRPC_STATUS_UTIL_H_
