// Status propagation macros. Abseil 20220623 has none of its own; these keep Abseil's shapes so a
// later move to ABSL_RETURN_IF_ERROR / ABSL_ASSIGN_OR_RETURN is a rename.
#ifndef RLHF_COMMON_STATUS_STATUS_MACROS_H_
#define RLHF_COMMON_STATUS_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define RLHF_RETURN_IF_ERROR(expr)                  \
  do {                                              \
    ::absl::Status _rlhf_status = (expr);           \
    if (!_rlhf_status.ok()) return _rlhf_status;    \
  } while (0)

#define RLHF_STATUS_CONCAT_INNER_(a, b) a##b
#define RLHF_STATUS_CONCAT_(a, b) RLHF_STATUS_CONCAT_INNER_(a, b)

#define RLHF_ASSIGN_OR_RETURN(lhs, rexpr) \
  RLHF_ASSIGN_OR_RETURN_IMPL_(RLHF_STATUS_CONCAT_(_rlhf_statusor_, __LINE__), lhs, rexpr)

#define RLHF_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#endif  // RLHF_COMMON_STATUS_STATUS_MACROS_H_
