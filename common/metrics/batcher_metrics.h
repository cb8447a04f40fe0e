// Prometheus metrics of a server-side DynamicBatcher (reward, reference, rollout Generate):
//   rlhf_batcher_queued_items{batcher}        gauge: items waiting for a batch
//   rlhf_batcher_items_total{batcher}         counter: items run through the batch function
//   rlhf_batcher_rejected_items_total{batcher} counter: items refused (queue full)
//   rlhf_batcher_batch_items{batcher}         histogram: items per batch
//   rlhf_batcher_batch_seconds{batcher}       histogram: time of one batch function call
//   rlhf_batcher_max_batch_items{batcher}     gauge: the configured largest batch (occupancy =
//                                             mean batch_items / this)
// `batcher` is the service's name, a bounded set. Thread-safe.
#ifndef RLHF_COMMON_METRICS_BATCHER_METRICS_H_
#define RLHF_COMMON_METRICS_BATCHER_METRICS_H_

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <string>

#include "common/batching/dynamic_batcher.h"

namespace rlhf::metrics {

class BatcherMetrics final : public batching::BatchObserver {
 public:
  // Registers (or reuses) the families in `registry` and this batcher's series; `max_batch` is
  // the batcher's configured largest batch.
  BatcherMetrics(prometheus::Registry& registry, const std::string& batcher, int max_batch);

  void OnQueueDepth(int queued_items) override;
  void OnRejected(int items) override;
  void OnBatch(int items, absl::Duration run) override;

 private:
  prometheus::Gauge& queued_;
  prometheus::Counter& items_;
  prometheus::Counter& rejected_;
  prometheus::Histogram& batch_items_;
  prometheus::Histogram& batch_seconds_;
};

}  // namespace rlhf::metrics

#endif  // RLHF_COMMON_METRICS_BATCHER_METRICS_H_
