#include "common/rl/kl_controller.h"

#include <algorithm>

namespace rlhf::rl {

absl::Status Validate(const KlControllerOptions& options) {
  if (!(options.init_kl_coef >= 0)) {
    return absl::InvalidArgumentError("init_kl_coef must be >= 0");
  }
  if (options.target.has_value() && !(*options.target > 0)) {
    return absl::InvalidArgumentError("target must be > 0");
  }
  if (!(options.horizon > 0)) return absl::InvalidArgumentError("horizon must be > 0");
  if (!(options.max_error > 0)) return absl::InvalidArgumentError("max_error must be > 0");
  return absl::OkStatus();
}

absl::StatusOr<KlController> KlController::Create(const KlControllerOptions& options) {
  absl::Status status = Validate(options);
  if (!status.ok()) return status;
  return KlController(options);
}

void KlController::Update(double observed_kl, int64_t n_steps) {
  if (!options_.target.has_value()) return;
  const double error =
      std::clamp(observed_kl / *options_.target - 1.0, -options_.max_error, options_.max_error);
  value_ *= 1.0 + error * static_cast<double>(n_steps) / options_.horizon;
}

}  // namespace rlhf::rl
