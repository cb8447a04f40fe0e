#include "services/learner/advantage_config.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace rlhf::learner {

using rlhf::v1::PpoConfig;

bool IsCriticFree(const PpoConfig& ppo) {
  return ppo.advantage() == PpoConfig::RLOO || ppo.advantage() == PpoConfig::GRPO;
}

int GroupSize(const PpoConfig& ppo) { return IsCriticFree(ppo) ? ppo.group_size() : 1; }

absl::Status ValidateAdvantageConfig(const rlhf::v1::LearnerConfig& c) {
  auto bad = [](auto&&... what) {
    return absl::InvalidArgumentError(absl::StrCat("learner config: ", what...));
  };
  const PpoConfig& ppo = c.ppo();
  const std::string name = PpoConfig::Advantage_Name(ppo.advantage());
  if (ppo.advantage() == PpoConfig::ADVANTAGE_UNSPECIFIED) {
    return bad("ppo.advantage must be GAE, RLOO or GRPO");
  }
  if (!IsCriticFree(ppo)) {
    if (ppo.group_size() != 1) {
      return bad("ppo.group_size is ", ppo.group_size(),
                 " but ppo.advantage GAE samples each prompt once: set group_size 1, or "
                 "advantage RLOO or GRPO");
    }
    return absl::OkStatus();
  }
  const int k = ppo.group_size();
  if (k < 2) {
    return bad("ppo.advantage ", name, " needs ppo.group_size >= 2 (samples per prompt), got ", k);
  }
  if (ppo.batch_size() % k != 0) {
    return bad("ppo.batch_size (", ppo.batch_size(), ") must be a multiple of ppo.group_size (", k,
               "): a batch holds whole groups");
  }
  if (c.max_prompts_in_flight() > 0 && c.max_prompts_in_flight() < k) {
    return bad("max_prompts_in_flight (", c.max_prompts_in_flight(),
               ") must be >= ppo.group_size (", k, "): a lease holds whole groups");
  }
  if (c.limits().max_batch() < k) {
    return bad("limits.max_batch (", c.limits().max_batch(), ") must be >= ppo.group_size (", k,
               "): a lease holds whole groups");
  }
  if (!c.critic().empty()) {
    return bad("critic is set but ppo.advantage ", name,
               " trains no critic: leave learner.critic empty");
  }
  return absl::OkStatus();
}

}  // namespace rlhf::learner
