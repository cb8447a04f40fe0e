#include "bench/ingest_learner.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <prometheus/registry.h>
#include <torch/torch.h>

#include "bench/bench_util.h"
#include "common/grpc/server.h"
#include "common/status/status_macros.h"
#include "nlohmann/json.hpp"
#include "rlhf/v1/config.pb.h"
#include "services/learner/learner_metrics.h"
#include "services/learner/learner_service.h"
#include "services/learner/prompt_pool.h"
#include "services/learner/trajectory_queue.h"
#include "services/learner/weight_store.h"

namespace rlhf::bench {
namespace {

std::vector<rlhf::v1::Prompt> RandomPrompts(const IngestLearnerOptions& o) {
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int64_t> token(3, o.vocab_size - 1);
  std::vector<rlhf::v1::Prompt> prompts(o.num_prompts);
  for (int i = 0; i < o.num_prompts; ++i) {
    prompts[i].set_index(i);
    prompts[i].set_text("prompt " + std::to_string(i));
    for (int k = 0; k < o.prompt_tokens; ++k) prompts[i].add_tokens(token(rng));
  }
  return prompts;
}

// What the consumer saw; written by its thread, read after it is joined.
struct ConsumerCounts {
  int64_t batches = 0;     // full or final partial batches dropped
  int64_t pops = 0;        // PopBatch calls
  int64_t max_queued = 0;  // queue depth seen before a pop
  int64_t max_parked = 0;  // streams parked (queue full) seen before a pop
  int64_t pops_with_parked = 0;
};

// The data half of Learner::Loop with the PPO step replaced by dropping the batch. The one
// addition is a Ledger() read before each pop, to report whether the queue ever filled.
void Consume(const IngestLearnerOptions& o, learner::LearnerService* service,
             learner::PromptPool* pool, learner::TrajectoryQueue* queue,
             learner::WeightStore* weights, learner::LearnerMetrics* metrics,
             const std::atomic<bool>* stop, ConsumerCounts* counts) {
  while (!stop->load(std::memory_order_relaxed)) {
    std::vector<rlhf::v1::Trajectory> batch;
    while (static_cast<int>(batch.size()) < o.batch_size &&
           !stop->load(std::memory_order_relaxed)) {
      const learner::TrajectoryLedger before = queue->Ledger();
      counts->max_queued = std::max(counts->max_queued, before.queued);
      counts->max_parked = std::max(counts->max_parked, before.parked);
      if (before.parked > 0) ++counts->pops_with_parked;
      auto got = queue->PopBatch(o.batch_size - static_cast<int>(batch.size()), weights->latest(),
                                 absl::Milliseconds(100));
      ++counts->pops;
      for (auto& t : got) batch.push_back(std::move(t));
      service->ServeWaitingLeases();
      metrics->SyncLedger(queue->Ledger());
      metrics->SyncPrompts(pool->Stats());
    }
    ++counts->batches;
    batch.clear();  // in place of trainer_->Step(batch) and PublishPolicy()
    queue->ReleaseTaken();
    service->ServeWaitingLeases();
  }
}

nlohmann::json LedgerLine(const learner::TrajectoryLedger& l, const learner::PromptPoolStats& p,
                          const ConsumerCounts& c) {
  return {{"received", l.received},
          {"accepted", l.accepted},
          {"duplicate", l.duplicate},
          {"invalid", l.invalid},
          {"stale_on_arrival", l.stale_on_arrival},
          {"stale_at_pop", l.stale_at_pop},
          {"cancelled", l.cancelled},
          {"consumed", l.consumed},
          {"queued", l.queued},
          {"parked", l.parked},
          {"prompts_leased", p.prompts_leased},
          {"prompts_completed", p.prompts_completed},
          {"prompts_late", p.late_completions},
          {"prompts_ignored", p.ignored_completions},
          {"prompts_expired", p.prompts_expired},
          {"batches", c.batches},
          {"pops", c.pops},
          {"max_queued", c.max_queued},
          {"max_parked", c.max_parked},
          {"pops_with_parked", c.pops_with_parked}};
}

}  // namespace

absl::Status ServeIngestLearner(const IngestLearnerOptions& o) {
  learner::PromptPoolOptions pool_options;
  pool_options.lease_duration = absl::Hours(1);  // no lease may expire during a run
  pool_options.max_lease_prompts = o.max_lease_prompts;
  RLHF_ASSIGN_OR_RETURN(auto pool, learner::PromptPool::Create(RandomPrompts(o), pool_options));
  learner::TrajectoryQueueOptions queue_options;
  queue_options.capacity = o.queue_capacity;
  queue_options.vocab_size = o.vocab_size;
  queue_options.max_seq_len = o.max_seq_len;
  queue_options.max_policy_lag = 1;
  std::unique_ptr<learner::TrajectoryJournal> journal;
  if (!o.journal.empty()) {
    RLHF_ASSIGN_OR_RETURN(journal, learner::TrajectoryJournal::Open(o.journal, o.journal_sync));
    queue_options.journal = journal.get();
  }
  RLHF_ASSIGN_OR_RETURN(auto queue, learner::TrajectoryQueue::Create(queue_options));
  learner::WeightStore weights(/*keep=*/1, /*chunk_bytes=*/1 << 20);
  RLHF_RETURN_IF_ERROR(weights.Publish(0, {{"w", torch::zeros({16})}}));

  auto registry = std::make_shared<prometheus::Registry>();
  learner::LearnerMetrics metrics(*registry);
  learner::LearnerServiceOptions service_options;
  service_options.sampling.set_max_new_tokens(192);
  service_options.max_prompts_in_flight = 0;  // no lease gate: the bench leases up front
  RLHF_RETURN_IF_ERROR(learner::Validate(service_options));
  learner::LearnerService service(service_options, pool.get(), queue.get(), &weights, &metrics);

  rlhf::v1::ServerConfig server;
  server.set_metrics_port(-1);
  server.set_shutdown_grace_seconds(2);
  std::atomic<bool> stop{false};
  ConsumerCounts counts;
  std::thread consumer;
  const absl::Status served = grpc_util::ServeUntilSignal(
      server, registry, {&service}, {"rlhf.v1.Learner"}, "/dev/stdout", [&] {
        consumer = std::thread(Consume, o, &service, pool.get(), queue.get(), &weights, &metrics,
                               &stop, &counts);
      });
  stop.store(true);
  if (consumer.joinable()) consumer.join();
  service.Close();
  queue->Close();
  RLHF_RETURN_IF_ERROR(served);
  Print(LedgerLine(queue->Ledger(), pool->Stats(), counts));
  return absl::OkStatus();
}

}  // namespace rlhf::bench
