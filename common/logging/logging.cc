#include "common/logging/logging.h"

#include <atomic>

namespace rlhf::logging {

void Init(const char* argv0) {
  static std::atomic<bool> done{false};
  if (done.exchange(true)) return;
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv0);
}

}  // namespace rlhf::logging
