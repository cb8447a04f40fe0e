// Server-side dynamic batching: requests from many callers, each a list of items, are merged
// into one call of a batch function of at most `max_batch` items, waiting at most `max_wait`
// for a batch to fill. Used by the reward and reference services so that one model forward
// serves several workers.
//
// Protocol:
//  1. Submit() enqueues a request whole (a request is never split across batches; one larger
//     than max_batch runs alone) or refuses it with RESOURCE_EXHAUSTED when more than
//     max_queued items wait, or UNAVAILABLE after Stop().
//  2. One worker thread takes requests in arrival order until the batch is full or the oldest
//     request has waited max_wait, runs the batch function, and calls each request's `done`
//     once with its own items' results, in order (or the batch's error). A batch function that
//     throws (a LibTorch error: out of memory, a shape the model refuses) fails that batch only:
//     each of its requests gets INTERNAL (RESOURCE_EXHAUSTED for out of memory) with the
//     exception's message, and the next batch runs as usual.
//  3. Stop() (and the destructor) finish the running batch, then answer every queued request
//     with UNAVAILABLE, and join the thread.
//
// Thread-safe.
#ifndef RLHF_COMMON_BATCHING_DYNAMIC_BATCHER_H_
#define RLHF_COMMON_BATCHING_DYNAMIC_BATCHER_H_

#include <deque>
#include <functional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status/exception.h"

namespace rlhf::batching {

// Told about the batcher's work, for metrics (common/metrics/batcher_metrics.h). Called with the
// batcher's lock released or from its worker thread; must be thread-safe and must not block.
class BatchObserver {
 public:
  virtual ~BatchObserver() = default;
  // Items now waiting, after a Submit or after a batch was taken.
  virtual void OnQueueDepth(int queued_items) = 0;
  // A Submit refused with RESOURCE_EXHAUSTED.
  virtual void OnRejected(int items) = 0;
  // One batch function call over `items` items that took `run`.
  virtual void OnBatch(int items, absl::Duration run) = 0;
};

struct BatcherOptions {
  /// Items per batch function call at most (a single larger request still runs, alone).
  int max_batch = 64;
  /// Longest time the oldest queued request waits for the batch to fill.
  absl::Duration max_wait = absl::Milliseconds(5);
  /// Items waiting beyond this are refused with RESOURCE_EXHAUSTED.
  int max_queued = 4096;
  /// Not owned; may be null. Must outlive the batcher.
  BatchObserver* observer = nullptr;
};

inline absl::Status Validate(const BatcherOptions& o) {
  if (o.max_batch < 1 || o.max_queued < 1 || o.max_wait < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "batching needs max_batch >= 1, max_queued >= 1, max_wait >= 0; got max_batch=",
        o.max_batch, " max_queued=", o.max_queued));
  }
  return absl::OkStatus();
}

template <typename In, typename Out>
class DynamicBatcher {
 public:
  // Returns one Out per In, in order, or an error for the whole batch.
  using BatchFn = std::function<absl::StatusOr<std::vector<Out>>(const std::vector<In>&)>;
  using Done = std::function<void(absl::StatusOr<std::vector<Out>>)>;

  // REQUIRES: Validate(options).ok().
  DynamicBatcher(const BatcherOptions& options, BatchFn fn)
      : options_(options), fn_(std::move(fn)), worker_([this] { Loop(); }) {}
  ~DynamicBatcher() { Stop(); }
  DynamicBatcher(const DynamicBatcher&) = delete;
  DynamicBatcher& operator=(const DynamicBatcher&) = delete;

  // Enqueues `items`; `done` runs later on the worker thread (never inside Submit). On error
  // `done` is not called.
  absl::Status Submit(std::vector<In> items, Done done) ABSL_LOCKS_EXCLUDED(mu_) {
    const int n = static_cast<int>(items.size());
    absl::Status status;
    int depth = 0;
    {
      absl::MutexLock lock(&mu_);
      if (stopped_) return absl::UnavailableError("batcher is shutting down");
      if (queued_items_ + n > options_.max_queued) {
        status = absl::ResourceExhaustedError(absl::StrCat(
            "queue full: ", queued_items_, " items waiting, limit ", options_.max_queued));
      } else {
        queued_items_ += n;
        depth = queued_items_;
        queue_.push_back(Request{std::move(items), std::move(done), absl::Now()});
      }
    }
    if (options_.observer != nullptr) {
      if (status.ok()) {
        options_.observer->OnQueueDepth(depth);
      } else {
        options_.observer->OnRejected(n);
      }
    }
    return status;
  }

  void Stop() ABSL_LOCKS_EXCLUDED(mu_) {
    {
      absl::MutexLock lock(&mu_);
      if (stopped_) return;
      stopped_ = true;
    }
    worker_.join();
  }

  // Statistics, for metrics.
  int queued_items() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return queued_items_;
  }

 private:
  struct Request {
    std::vector<In> items;
    Done done;
    absl::Time enqueued;
  };

  // Takes the next batch of whole requests, waiting as the protocol says. Returns false when
  // stopped (and the queue has been answered).
  bool NextBatch(std::vector<Request>* batch) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](DynamicBatcher* b) ABSL_EXCLUSIVE_LOCKS_REQUIRED(b->mu_) {
          return b->stopped_ || !b->queue_.empty();
        },
        this));
    if (!stopped_) {
      const absl::Time deadline = queue_.front().enqueued + options_.max_wait;
      mu_.AwaitWithDeadline(
          absl::Condition(
              +[](DynamicBatcher* b) ABSL_EXCLUSIVE_LOCKS_REQUIRED(b->mu_) {
                return b->stopped_ || b->queued_items_ >= b->options_.max_batch;
              },
              this),
          deadline);
    }
    if (stopped_) {
      for (auto& r : queue_) r.done(absl::UnavailableError("batcher is shutting down"));
      queue_.clear();
      queued_items_ = 0;
      return false;
    }
    int taken = 0;
    while (!queue_.empty() &&
           (taken == 0 || taken + static_cast<int>(queue_.front().items.size()) <=
                              options_.max_batch)) {
      taken += queue_.front().items.size();
      batch->push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    queued_items_ -= taken;
    depth_after_take_ = queued_items_;
    return true;
  }

  void RunBatch(std::vector<Request>& batch) {
    std::vector<In> items;
    for (auto& r : batch) {
      for (auto& item : r.items) items.push_back(std::move(item));
    }
    const absl::Time start = absl::Now();
    absl::StatusOr<std::vector<Out>> outs = CallFn(items);
    if (options_.observer != nullptr) {
      options_.observer->OnBatch(static_cast<int>(items.size()), absl::Now() - start);
    }
    if (outs.ok() && outs->size() != items.size()) {
      outs = absl::InternalError(absl::StrCat("batch function returned ", outs->size(),
                                              " results for ", items.size(), " items"));
    }
    size_t offset = 0;
    for (auto& r : batch) {
      if (!outs.ok()) {
        r.done(outs.status());
        continue;
      }
      std::vector<Out> mine(std::make_move_iterator(outs->begin() + offset),
                            std::make_move_iterator(outs->begin() + offset + r.items.size()));
      offset += r.items.size();
      r.done(std::move(mine));
    }
  }

  absl::StatusOr<std::vector<Out>> CallFn(const std::vector<In>& items) {
    try {
      return fn_(items);
    } catch (...) {
      return status::CurrentExceptionToStatus(absl::StrCat("batch of ", items.size(), " items"));
    }
  }

  void Loop() {
    std::vector<Request> batch;
    while (NextBatch(&batch)) {
      if (options_.observer != nullptr) options_.observer->OnQueueDepth(depth_after_take_);
      RunBatch(batch);
      batch.clear();
    }
  }

  // Constant after construction.
  const BatcherOptions options_;
  const BatchFn fn_;

  mutable absl::Mutex mu_;
  std::deque<Request> queue_ ABSL_GUARDED_BY(mu_);
  int queued_items_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  // Queue depth right after the last batch was taken; read by the worker thread only.
  int depth_after_take_ = 0;

  std::thread worker_;  // last: starts after the state above is initialised
};

}  // namespace rlhf::batching

#endif  // RLHF_COMMON_BATCHING_DYNAMIC_BATCHER_H_
