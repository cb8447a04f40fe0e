// The KL-penalty coefficient (beta) of RLHF PPO: fixed, or adapted towards a target KL with the
// proportional controller of Ziegler et al. 2019:
//   e = clip(KL_obs / target - 1, -max_error, max_error);  beta <- beta * (1 + e * n_steps /
//   horizon).
#ifndef RLHF_COMMON_RL_KL_CONTROLLER_H_
#define RLHF_COMMON_RL_KL_CONTROLLER_H_

#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rlhf::rl {

struct KlControllerOptions {
  // Beta before the first update, >= 0.
  double init_kl_coef = 0.2;
  // Target KL per sequence (e.g. 6 nats), > 0. nullopt = fixed coefficient: Update is a no-op.
  std::optional<double> target = 6.0;
  // Number of samples over which a full proportional error moves beta by a factor (1 + e), > 0.
  double horizon = 10000;
  // Clip on the proportional error KL_obs / target - 1, > 0.
  double max_error = 0.2;
};

// Returns InvalidArgument naming the first field out of range.
absl::Status Validate(const KlControllerOptions& options);

// Holds the current beta. A copyable value; not thread-safe (the learner owns and updates it).
class KlController {
 public:
  // Returns a controller at options.init_kl_coef, or Validate's error.
  static absl::StatusOr<KlController> Create(const KlControllerOptions& options);

  // The current coefficient.
  double value() const { return value_; }
  // Whether Update changes the coefficient (options.target is set).
  bool adaptive() const { return options_.target.has_value(); }

  // Moves beta after a batch of `n_steps` samples whose mean sequence KL was `observed_kl` (see
  // MeanSequenceKl). No-op for a fixed controller.
  void Update(double observed_kl, int64_t n_steps);

 private:
  explicit KlController(const KlControllerOptions& options)
      : options_(options), value_(options.init_kl_coef) {}

  KlControllerOptions options_;
  double value_;
};

}  // namespace rlhf::rl

#endif  // RLHF_COMMON_RL_KL_CONTROLLER_H_
