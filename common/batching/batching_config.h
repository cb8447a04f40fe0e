// BatcherOptions from the typed config (rlhf.v1.BatchingConfig).
#ifndef RLHF_COMMON_BATCHING_BATCHING_CONFIG_H_
#define RLHF_COMMON_BATCHING_BATCHING_CONFIG_H_

#include "common/batching/dynamic_batcher.h"
#include "rlhf/v1/config.pb.h"

namespace rlhf::batching {

inline BatcherOptions BatcherOptionsFromConfig(const rlhf::v1::BatchingConfig& c) {
  BatcherOptions o;
  o.max_batch = c.max_batch();
  o.max_wait = absl::Microseconds(static_cast<int64_t>(c.max_wait_ms() * 1000));
  o.max_queued = c.max_queued_sequences();
  return o;
}

}  // namespace rlhf::batching

#endif  // RLHF_COMMON_BATCHING_BATCHING_CONFIG_H_
