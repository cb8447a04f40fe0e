// Prometheus metrics of the rollout worker's PPO loop, registered once against the registry
// `main` hands in:
//   rlhf_rollout_trajectories_generated_total      counter (handed to the learner stream)
//   rlhf_rollout_tokens_generated_total            counter (response tokens)
//   rlhf_rollout_acks_total{outcome}               counter (accepted|duplicate|invalid|stale)
//   rlhf_rollout_resent_total                      counter (trajectories written again after a
//                                                  reconnect)
//   rlhf_rollout_weight_syncs_total                counter
//   rlhf_rollout_weight_sync_bytes_total           counter (chunk payload bytes received)
//   rlhf_rollout_policy_version                    gauge (-1 until the first sync)
//   rlhf_rollout_unacked                           gauge (sent or queued, not yet acked)
//   rlhf_rollout_push_blocked_seconds_total        counter (loop blocked at max_unacked)
//   rlhf_rollout_retries_total{call}               counter (wait_learner|lease|get_weights|
//                                                  reference|reward|push)
//   rlhf_rollout_leases_returned_total{reason}     counter (stopping|weights_unavailable|
//                                                  weights_invalid|invalid|error)
//   rlhf_rollout_generation_seconds                histogram (one per generation batch)
//   rlhf_rollout_weight_sync_seconds               histogram (one per version fetched and
//                                                  installed, retries included)
//   rlhf_rollout_lease_wait_seconds_total          counter (time waiting for prompts: the
//                                                  worker is starved)
//
// Thread-safe (prometheus-cpp metrics are).
#ifndef RLHF_SERVICES_ROLLOUT_WORKER_METRICS_H_
#define RLHF_SERVICES_ROLLOUT_WORKER_METRICS_H_

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <string>

#include "rlhf/v1/services.pb.h"

namespace rlhf::rollout {

struct WorkerMetrics {
  // Registers the families in `registry`. Throws what prometheus-cpp throws when a family of
  // the same name but another type or help exists (callers convert it once, in their factory).
  explicit WorkerMetrics(prometheus::Registry& registry);

  WorkerMetrics(const WorkerMetrics&) = delete;
  WorkerMetrics& operator=(const WorkerMetrics&) = delete;

  // The ack counter of `outcome` (OUTCOME_UNSPECIFIED counts as invalid).
  prometheus::Counter& Ack(rlhf::v1::Ack::Outcome outcome);
  // The retry counter of `call` / the lease counter of `reason` (bounded sets, see above).
  prometheus::Counter& Retry(const std::string& call);
  prometheus::Counter& LeaseReturned(const std::string& reason);

  prometheus::Counter& trajectories_generated;
  prometheus::Counter& tokens_generated;
  prometheus::Counter& resent;
  prometheus::Counter& weight_syncs;
  prometheus::Counter& weight_sync_bytes;
  prometheus::Gauge& policy_version;
  prometheus::Gauge& unacked;
  prometheus::Counter& push_blocked_seconds;
  prometheus::Histogram& generation_seconds;
  prometheus::Histogram& weight_sync_seconds;
  prometheus::Counter& lease_wait_seconds;

 private:
  prometheus::Family<prometheus::Counter>& acks_;
  prometheus::Family<prometheus::Counter>& retries_;
  prometheus::Family<prometheus::Counter>& leases_returned_;
};

}  // namespace rlhf::rollout

#endif  // RLHF_SERVICES_ROLLOUT_WORKER_METRICS_H_
