#include "common/metrics/batcher_metrics.h"

namespace rlhf::metrics {

BatcherMetrics::BatcherMetrics(prometheus::Registry& r, const std::string& batcher, int max_batch)
    : queued_(prometheus::BuildGauge()
                  .Name("rlhf_batcher_queued_items")
                  .Help("Items waiting for a batch.")
                  .Register(r)
                  .Add({{"batcher", batcher}})),
      items_(prometheus::BuildCounter()
                 .Name("rlhf_batcher_items_total")
                 .Help("Items run through the batch function.")
                 .Register(r)
                 .Add({{"batcher", batcher}})),
      rejected_(prometheus::BuildCounter()
                    .Name("rlhf_batcher_rejected_items_total")
                    .Help("Items refused because the queue was full.")
                    .Register(r)
                    .Add({{"batcher", batcher}})),
      batch_items_(
          prometheus::BuildHistogram()
              .Name("rlhf_batcher_batch_items")
              .Help("Items per batch.")
              .Register(r)
              .Add({{"batcher", batcher}},
                   prometheus::Histogram::BucketBoundaries{1, 2, 4, 8, 16, 32, 64, 128, 256})),
      batch_seconds_(
          prometheus::BuildHistogram()
              .Name("rlhf_batcher_batch_seconds")
              .Help("Time of one batch function call.")
              .Register(r)
              .Add({{"batcher", batcher}}, prometheus::Histogram::BucketBoundaries{
                                               0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10})) {
  prometheus::BuildGauge()
      .Name("rlhf_batcher_max_batch_items")
      .Help("Configured largest batch, in items.")
      .Register(r)
      .Add({{"batcher", batcher}})
      .Set(static_cast<double>(max_batch));
}

void BatcherMetrics::OnQueueDepth(int queued_items) {
  queued_.Set(static_cast<double>(queued_items));
}

void BatcherMetrics::OnRejected(int items) { rejected_.Increment(static_cast<double>(items)); }

void BatcherMetrics::OnBatch(int items, absl::Duration run) {
  items_.Increment(static_cast<double>(items));
  batch_items_.Observe(static_cast<double>(items));
  batch_seconds_.Observe(absl::ToDoubleSeconds(run));
}

}  // namespace rlhf::metrics
