#include "services/learner/learner_metrics.h"

#include <algorithm>
#include <string>

namespace rlhf::learner {
namespace {

prometheus::Family<prometheus::Counter>& CounterFamily(prometheus::Registry& r,
                                                       const std::string& name,
                                                       const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(r);
}

prometheus::Gauge& Gauge(prometheus::Registry& r, const std::string& name,
                         const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(r).Add({});
}

void AddDelta(prometheus::Counter& c, int64_t now, int64_t before) {
  if (now > before) c.Increment(static_cast<double>(now - before));
}

}  // namespace

LearnerMetrics::LearnerMetrics(prometheus::Registry& r)
    : push_streams(Gauge(r, "rlhf_learner_push_streams", "Open PushTrajectories streams.")),
      policy_version(Gauge(r, "rlhf_learner_policy_version", "Newest published policy version.")),
      weight_bytes_sent(CounterFamily(r, "rlhf_learner_weight_bytes_sent_total",
                                      "Weight payload bytes streamed by GetWeights.")
                            .Add({})),
      trajectories_(CounterFamily(r, "rlhf_learner_trajectories_total",
                                  "Trajectories by ledger stage: received, accepted, consumed.")),
      received_(trajectories_.Add({{"stage", "received"}})),
      accepted_(trajectories_.Add({{"stage", "accepted"}})),
      consumed_(trajectories_.Add({{"stage", "consumed"}})),
      dropped_(CounterFamily(r, "rlhf_learner_trajectories_dropped_total",
                             "Trajectories dropped, by reason.")),
      dropped_duplicate_(dropped_.Add({{"reason", "duplicate"}})),
      dropped_invalid_(dropped_.Add({{"reason", "invalid"}})),
      dropped_stale_(dropped_.Add({{"reason", "stale"}})),
      dropped_cancelled_(dropped_.Add({{"reason", "cancelled"}})),
      queue_depth_(
          Gauge(r, "rlhf_learner_queue_depth", "Accepted trajectories waiting for the trainer.")),
      parked_(Gauge(r, "rlhf_learner_parked_streams",
                    "Push streams paused because the queue is full (backpressure).")),
      prompts_(CounterFamily(r, "rlhf_learner_prompts_total", "Prompt-pool events.")),
      prompts_leased_(prompts_.Add({{"event", "leased"}})),
      prompts_completed_(prompts_.Add({{"event", "completed"}})),
      prompts_returned_(prompts_.Add({{"event", "returned"}})),
      prompts_expired_(prompts_.Add({{"event", "expired"}})),
      steps_(CounterFamily(r, "rlhf_learner_steps_total", "PPO steps done.").Add({})),
      tokens_trained_(CounterFamily(r, "rlhf_learner_tokens_trained_total",
                                    "Response tokens in trained batches.")
                          .Add({})),
      step_seconds_(prometheus::BuildHistogram()
                        .Name("rlhf_learner_step_seconds")
                        .Help("Wall time of one PPO step.")
                        .Register(r)
                        .Add({}, prometheus::Histogram::BucketBoundaries{0.01, 0.03, 0.1, 0.3, 1, 3,
                                                                         10, 30, 100})),
      phases_(CounterFamily(r, "rlhf_learner_step_phase_seconds_total",
                            "Learner loop time by phase of the PPO step.")),
      policy_lag_(prometheus::BuildHistogram()
                      .Name("rlhf_learner_policy_lag")
                      .Help("Policy versions between generating a trajectory and training on it.")
                      .Register(r)
                      .Add({}, prometheus::Histogram::BucketBoundaries{0, 1, 2, 3, 4, 8, 16})),
      ppo_(prometheus::BuildGauge()
               .Name("rlhf_ppo_stat")
               .Help("Statistics of the last PPO step, by name.")
               .Register(r)) {
  // Every phase exists (at 0) from the start; allreduce stays 0 on a single rank.
  for (const char* phase : {"wait_data", "forward_backward", "allreduce", "optimizer", "publish"}) {
    phases_.Add({{"phase", phase}});
  }
}

void LearnerMetrics::SyncLedger(const TrajectoryLedger& l) {
  absl::MutexLock lock(&mu_);
  const TrajectoryLedger& b = last_ledger_;
  AddDelta(received_, l.received, b.received);
  AddDelta(accepted_, l.accepted, b.accepted);
  AddDelta(consumed_, l.consumed, b.consumed);
  AddDelta(dropped_duplicate_, l.duplicate, b.duplicate);
  AddDelta(dropped_invalid_, l.invalid, b.invalid);
  AddDelta(dropped_stale_, l.stale_on_arrival + l.stale_at_pop,
           b.stale_on_arrival + b.stale_at_pop);
  AddDelta(dropped_cancelled_, l.cancelled, b.cancelled);
  queue_depth_.Set(static_cast<double>(l.queued));
  parked_.Set(static_cast<double>(l.parked));
  last_ledger_ = l;
}

void LearnerMetrics::SyncPrompts(const PromptPoolStats& p) {
  absl::MutexLock lock(&mu_);
  const PromptPoolStats& b = last_pool_;
  AddDelta(prompts_leased_, p.prompts_leased, b.prompts_leased);
  AddDelta(prompts_completed_, p.prompts_completed + p.late_completions,
           b.prompts_completed + b.late_completions);
  AddDelta(prompts_returned_, p.prompts_returned, b.prompts_returned);
  AddDelta(prompts_expired_, p.prompts_expired, b.prompts_expired);
  last_pool_ = p;
}

void LearnerMetrics::RecordStep(const PpoStepStats& s, const LoopTimes& loop,
                                const std::vector<int64_t>& lags) {
  phases_.Add({{"phase", "wait_data"}}).Increment(loop.wait_data);
  phases_.Add({{"phase", "forward_backward"}})
      .Increment(std::max(0.0, s.seconds - s.optimizer_seconds - s.allreduce_seconds));
  phases_.Add({{"phase", "allreduce"}}).Increment(s.allreduce_seconds);
  phases_.Add({{"phase", "optimizer"}}).Increment(s.optimizer_seconds);
  phases_.Add({{"phase", "publish"}}).Increment(loop.publish);
  for (int64_t lag : lags) policy_lag_.Observe(static_cast<double>(lag));
  steps_.Increment();
  tokens_trained_.Increment(static_cast<double>(s.tokens));
  step_seconds_.Observe(s.seconds);
  const std::pair<const char*, double> stats[] = {
      {"reward_mean", s.score_mean},  {"kl_mean", s.kl_mean},
      {"kl_coef", s.kl_coef},         {"clipfrac", s.clipfrac},
      {"entropy", s.entropy},         {"value_loss", s.value_loss},
      {"policy_loss", s.policy_loss}, {"explained_variance", s.explained_variance},
      {"approx_kl", s.approx_kl},     {"response_length_mean", s.response_length_mean},
      {"behaviour_weight_mean", s.behaviour_weight_mean}};
  for (const auto& [name, value] : stats) ppo_.Add({{"stat", name}}).Set(value);
}

}  // namespace rlhf::learner
