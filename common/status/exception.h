// The one place an exception becomes a Status. LibTorch (and the standard library) throw; our
// code returns Status: every boundary where a throw can arrive (a model call on a batch, a c10d
// collective, a trainer step, a job's main) catches and calls this inside its catch block.
#ifndef RLHF_COMMON_STATUS_EXCEPTION_H_
#define RLHF_COMMON_STATUS_EXCEPTION_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace rlhf::status {

// The exception being handled, as "<context>: <message>". The message is its first line without
// LibTorch's C++ backtrace (c10::Error carries one; the whole text goes to the log, once per
// call, at WARNING). Out of memory (c10::OutOfMemoryError, std::bad_alloc) is
// RESOURCE_EXHAUSTED; anything else is `code`. Must be called inside a catch block.
absl::Status CurrentExceptionToStatus(absl::string_view context,
                                      absl::StatusCode code = absl::StatusCode::kInternal);

// Runs `fn` (returning absl::Status or absl::StatusOr<T>); an exception escaping it becomes
// CurrentExceptionToStatus(context).
template <typename Fn>
auto CatchExceptions(absl::string_view context, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (...) {
    return CurrentExceptionToStatus(context);
  }
}

}  // namespace rlhf::status

#endif  // RLHF_COMMON_STATUS_EXCEPTION_H_
