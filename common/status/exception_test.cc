#include "common/status/exception.h"

#include <c10/util/Exception.h>
#include <gtest/gtest.h>

#include <new>
#include <stdexcept>

namespace rlhf::status {
namespace {

template <typename Fn>
absl::Status Catch(Fn fn, absl::StatusCode code = absl::StatusCode::kInternal) {
  try {
    fn();
  } catch (...) {
    return CurrentExceptionToStatus("scoring a batch of 3", code);
  }
  return absl::OkStatus();
}

TEST(ExceptionTest, LibTorchErrorsLoseTheirBacktrace) {
  absl::Status s = Catch([] { TORCH_CHECK(false, "shape [2, 7] is invalid"); });
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(s.message().substr(0, 22), "scoring a batch of 3: ");
  EXPECT_NE(s.message().find("shape [2, 7] is invalid"), absl::string_view::npos);
  EXPECT_EQ(s.message().find('\n'), absl::string_view::npos) << s.message();
  EXPECT_EQ(s.message().find("frame #"), absl::string_view::npos) << s.message();
}

TEST(ExceptionTest, OutOfMemoryIsResourceExhausted) {
  EXPECT_EQ(Catch([] { throw std::bad_alloc(); }).code(), absl::StatusCode::kResourceExhausted);
  absl::Status oom = Catch([] { TORCH_CHECK_WITH(OutOfMemoryError, false, "CUDA out of memory"); },
                           absl::StatusCode::kUnavailable);
  EXPECT_EQ(oom.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(oom.message().find("CUDA out of memory"), absl::string_view::npos);
}

TEST(ExceptionTest, OtherExceptionsTakeTheGivenCode) {
  absl::Status s = Catch([] { throw std::runtime_error("peer closed\nmore"); },
                         absl::StatusCode::kUnavailable);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(s.message(), "scoring a batch of 3: peer closed");
  EXPECT_EQ(Catch([] { throw 42; }).message(), "scoring a batch of 3: unknown exception");
}

}  // namespace
}  // namespace rlhf::status
