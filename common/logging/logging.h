// Logging for every process: glog 0.6 (same LOG/CHECK/VLOG spelling as absl/log, which Debian's
// Abseil lacks), initialised once per process.
#ifndef RLHF_COMMON_LOGGING_LOGGING_H_
#define RLHF_COMMON_LOGGING_LOGGING_H_

#include <glog/logging.h>

namespace rlhf::logging {

// Initialises glog for a process named `argv0`: logs to stderr, no log files. Idempotent.
void Init(const char* argv0);

}  // namespace rlhf::logging

#endif  // RLHF_COMMON_LOGGING_LOGGING_H_
