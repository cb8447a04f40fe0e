// The learner's Prometheus metrics, registered once against the registry `main` hands in.
//
//   rlhf_learner_trajectories_total{stage}            received | accepted | consumed
//   rlhf_learner_trajectories_dropped_total{reason}    duplicate | invalid | stale | cancelled
//   rlhf_learner_queue_depth                           accepted, waiting for the trainer
//   rlhf_learner_parked_streams                        streams waiting for room (backpressure)
//   rlhf_learner_push_streams                          open PushTrajectories streams
//   rlhf_learner_prompts_total{event}                  leased | completed | returned | expired
//   rlhf_learner_policy_version                        newest published version
//   rlhf_learner_weight_bytes_sent_total               GetWeights payload bytes
//   rlhf_learner_steps_total, rlhf_learner_tokens_trained_total
//   rlhf_learner_step_seconds                          histogram of PPO step wall time
//   rlhf_learner_step_phase_seconds_total{phase}       time in each phase of the loop:
//       wait_data | forward_backward | allreduce | optimizer | publish
//   rlhf_learner_policy_lag                            histogram, per trajectory trained on:
//       learner version minus the version that generated it
//   rlhf_ppo_stat{stat}                                the last step's reward_mean, kl_mean,
//       kl_coef, clipfrac, entropy, value_loss, policy_loss, explained_variance, approx_kl,
//       response_length_mean
//
// Thread-safe (prometheus-cpp metrics are; the ledger sync takes a lock).
#ifndef RLHF_SERVICES_LEARNER_LEARNER_METRICS_H_
#define RLHF_SERVICES_LEARNER_LEARNER_METRICS_H_

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "services/learner/ppo_trainer.h"
#include "services/learner/prompt_pool.h"
#include "services/learner/trajectory_queue.h"

namespace rlhf::learner {

class LearnerMetrics {
 public:
  explicit LearnerMetrics(prometheus::Registry& registry);
  LearnerMetrics(const LearnerMetrics&) = delete;
  LearnerMetrics& operator=(const LearnerMetrics&) = delete;

  // Brings the ledger counters up to `ledger` / `pool` (monotonic: adds the differences).
  void SyncLedger(const TrajectoryLedger& ledger) ABSL_LOCKS_EXCLUDED(mu_);
  void SyncPrompts(const PromptPoolStats& pool) ABSL_LOCKS_EXCLUDED(mu_);
  // Seconds of one step spent outside the trainer.
  struct LoopTimes {
    double wait_data = 0;  // collecting the batch from the queue
    double publish = 0;    // publishing the new weights
  };
  // Records one PPO step; `lags` has one policy lag per trajectory of the batch.
  void RecordStep(const PpoStepStats& stats, const LoopTimes& loop,
                  const std::vector<int64_t>& lags);

  prometheus::Gauge& push_streams;
  prometheus::Gauge& policy_version;
  prometheus::Counter& weight_bytes_sent;

 private:
  prometheus::Family<prometheus::Counter>& trajectories_;
  prometheus::Counter& received_;
  prometheus::Counter& accepted_;
  prometheus::Counter& consumed_;
  prometheus::Family<prometheus::Counter>& dropped_;
  prometheus::Counter& dropped_duplicate_;
  prometheus::Counter& dropped_invalid_;
  prometheus::Counter& dropped_stale_;
  prometheus::Counter& dropped_cancelled_;
  prometheus::Gauge& queue_depth_;
  prometheus::Gauge& parked_;
  prometheus::Family<prometheus::Counter>& prompts_;
  prometheus::Counter& prompts_leased_;
  prometheus::Counter& prompts_completed_;
  prometheus::Counter& prompts_returned_;
  prometheus::Counter& prompts_expired_;
  prometheus::Counter& steps_;
  prometheus::Counter& tokens_trained_;
  prometheus::Histogram& step_seconds_;
  prometheus::Family<prometheus::Counter>& phases_;
  prometheus::Histogram& policy_lag_;
  prometheus::Family<prometheus::Gauge>& ppo_;

  absl::Mutex mu_;
  TrajectoryLedger last_ledger_ ABSL_GUARDED_BY(mu_);
  PromptPoolStats last_pool_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rlhf::learner

#endif  // RLHF_SERVICES_LEARNER_LEARNER_METRICS_H_
