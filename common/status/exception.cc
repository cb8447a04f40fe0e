#include "common/status/exception.h"

#include <glog/logging.h>

#include <c10/util/Exception.h>
#include <exception>
#include <new>
#include <string>

#include "absl/strings/str_cat.h"

namespace rlhf::status {

absl::Status CurrentExceptionToStatus(absl::string_view context, absl::StatusCode code) {
  std::string message;
  std::string full;
  try {
    throw;
  } catch (const c10::OutOfMemoryError& e) {
    code = absl::StatusCode::kResourceExhausted;
    message = e.what_without_backtrace();
    full = e.what();
  } catch (const c10::Error& e) {
    message = e.what_without_backtrace();
    full = e.what();
  } catch (const std::bad_alloc& e) {
    code = absl::StatusCode::kResourceExhausted;
    message = absl::StrCat("out of memory (", e.what(), ")");
  } catch (const std::exception& e) {
    message = e.what();
  } catch (...) {
    message = "unknown exception";
  }
  if (const size_t eol = message.find('\n'); eol != std::string::npos) {
    if (full.empty()) full = message;
    message.resize(eol);
  }
  if (!full.empty()) LOG(WARNING) << context << ": " << full;
  return absl::Status(code, absl::StrCat(context, ": ", message));
}

}  // namespace rlhf::status
