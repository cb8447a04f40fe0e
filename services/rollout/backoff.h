// Exponential backoff with jitter for the rollout worker's retries: each delay is drawn
// uniformly from [d/2, d], where d starts at `initial` and doubles up to `max`, so that many
// workers retrying against a restarted learner do not arrive in lockstep.
//
// Thread-compatible: one owner at a time.
#ifndef RLHF_SERVICES_ROLLOUT_BACKOFF_H_
#define RLHF_SERVICES_ROLLOUT_BACKOFF_H_

#include <algorithm>

#include "absl/random/random.h"
#include "absl/time/time.h"

namespace rlhf::rollout {

class Backoff {
 public:
  // REQUIRES: initial > 0, max >= initial.
  Backoff(absl::Duration initial, absl::Duration max) : initial_(initial), max_(max) {}

  // Returns the next delay and doubles the current one (up to max).
  absl::Duration Next() {
    const absl::Duration d = current_;
    current_ = std::min(current_ * 2, max_);
    return absl::Uniform(bitgen_, 0.5, 1.0) * d;
  }

  // Starts again from `initial` (after a success).
  void Reset() { current_ = initial_; }

 private:
  const absl::Duration initial_;
  const absl::Duration max_;
  absl::Duration current_ = initial_;
  absl::BitGen bitgen_;
};

}  // namespace rlhf::rollout

#endif  // RLHF_SERVICES_ROLLOUT_BACKOFF_H_
