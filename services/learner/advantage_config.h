// The sampling side of PpoConfig.advantage: how many samples of each prompt the learner leases
// and trains on together, and the checks that tie the advantage estimator, group_size, the batch
// sizes and the learner's limits together. Torch-free, so that `rlhf check-config` and
// `rlhf local` make the same checks as the learner before anything starts.
#ifndef RLHF_SERVICES_LEARNER_ADVANTAGE_CONFIG_H_
#define RLHF_SERVICES_LEARNER_ADVANTAGE_CONFIG_H_

#include "absl/status/status.h"
#include "rlhf/v1/config.pb.h"

namespace rlhf::learner {

// Whether `ppo` trains without a critic (RLOO or GRPO).
bool IsCriticFree(const rlhf::v1::PpoConfig& ppo);

// Samples per prompt: ppo.group_size for RLOO and GRPO, 1 for GAE.
int GroupSize(const rlhf::v1::PpoConfig& ppo);

// OK, or INVALID_ARGUMENT "learner config: ..." naming the field: advantage unspecified;
// group_size other than 1 with GAE; with RLOO/GRPO group_size < 2, batch_size not a multiple of
// group_size, max_prompts_in_flight (when set) or limits.max_batch below group_size (a lease
// holds whole groups), or a critic given (none is trained).
absl::Status ValidateAdvantageConfig(const rlhf::v1::LearnerConfig& config);

}  // namespace rlhf::learner

#endif  // RLHF_SERVICES_LEARNER_ADVANTAGE_CONFIG_H_
