#include "common/batching/dynamic_batcher.h"

#include <atomic>
#include <new>
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

#include "absl/synchronization/notification.h"

namespace rlhf::batching {
namespace {

using Batcher = DynamicBatcher<int, std::string>;

// Records the size of every batch and answers each item with its decimal string.
struct Recorder {
  absl::Mutex mu;
  std::vector<size_t> sizes ABSL_GUARDED_BY(mu);
  absl::Notification* gate = nullptr;  // when set, the first batch waits for it

  Batcher::BatchFn Fn() {
    return [this](const std::vector<int>& items) -> absl::StatusOr<std::vector<std::string>> {
      if (gate != nullptr) gate->WaitForNotification();
      absl::MutexLock lock(&mu);
      sizes.push_back(items.size());
      std::vector<std::string> out;
      for (int i : items) out.push_back(std::to_string(i));
      return out;
    };
  }
};

// Collects one request's result.
struct Result {
  absl::Notification done;
  absl::StatusOr<std::vector<std::string>> value;
  Batcher::Done Callback() {
    return [this](absl::StatusOr<std::vector<std::string>> v) {
      value = std::move(v);
      done.Notify();
    };
  }
};

TEST(DynamicBatcherTest, MergesRequestsAndReturnsEachItsOwnResultsInOrder) {
  Recorder rec;
  BatcherOptions opts;
  opts.max_batch = 8;
  opts.max_wait = absl::Seconds(10);  // the batch fills before the wait ends
  Batcher batcher(opts, rec.Fn());
  Result a, b;
  // The worker waits for the batch to fill (max_wait is long): 3 + 5 = 8 items go together.
  ASSERT_TRUE(batcher.Submit({1, 2, 3}, a.Callback()).ok());
  ASSERT_TRUE(batcher.Submit({4, 5, 6, 7, 8}, b.Callback()).ok());
  a.done.WaitForNotification();
  b.done.WaitForNotification();
  ASSERT_TRUE(a.value.ok() && b.value.ok());
  EXPECT_EQ(*a.value, (std::vector<std::string>{"1", "2", "3"}));
  EXPECT_EQ(*b.value, (std::vector<std::string>{"4", "5", "6", "7", "8"}));
  absl::MutexLock lock(&rec.mu);
  EXPECT_EQ(rec.sizes, (std::vector<size_t>{8}));
}

TEST(DynamicBatcherTest, PartialBatchRunsAfterMaxWait) {
  Recorder rec;
  BatcherOptions opts;
  opts.max_batch = 100;
  opts.max_wait = absl::Milliseconds(20);
  Batcher batcher(opts, rec.Fn());
  Result r;
  ASSERT_TRUE(batcher.Submit({7}, r.Callback()).ok());
  r.done.WaitForNotification();
  ASSERT_TRUE(r.value.ok());
  EXPECT_EQ(*r.value, std::vector<std::string>{"7"});
}

TEST(DynamicBatcherTest, NeverExceedsMaxBatchExceptForOneLargeRequest) {
  Recorder rec;
  absl::Notification gate;
  rec.gate = &gate;
  BatcherOptions opts;
  opts.max_batch = 4;
  opts.max_wait = absl::ZeroDuration();
  Batcher batcher(opts, rec.Fn());
  std::vector<std::unique_ptr<Result>> results;
  for (int i = 0; i < 5; ++i) {
    results.push_back(std::make_unique<Result>());
    std::vector<int> items(i == 4 ? 6 : 3, i);
    ASSERT_TRUE(batcher.Submit(items, results.back()->Callback()).ok());
  }
  gate.Notify();
  for (auto& r : results) r->done.WaitForNotification();
  absl::MutexLock lock(&rec.mu);
  for (size_t s : rec.sizes) EXPECT_TRUE(s <= 4 || s == 6) << s;
  size_t total = 0;
  for (size_t s : rec.sizes) total += s;
  EXPECT_EQ(total, 18u);
}

TEST(DynamicBatcherTest, FullQueueIsResourceExhaustedAndStopAnswersQueuedWithUnavailable) {
  Recorder rec;
  absl::Notification gate;
  rec.gate = &gate;
  BatcherOptions opts;
  opts.max_batch = 2;
  opts.max_wait = absl::ZeroDuration();
  opts.max_queued = 4;
  auto batcher = std::make_unique<Batcher>(opts, rec.Fn());
  Result running, queued;
  ASSERT_TRUE(batcher->Submit({1, 2}, running.Callback()).ok());
  // Wait until the worker has taken the first request (queue empty again).
  while (batcher->queued_items() != 0) absl::SleepFor(absl::Milliseconds(1));
  ASSERT_TRUE(batcher->Submit({3, 4, 5, 6}, queued.Callback()).ok());
  absl::Status full = batcher->Submit({9}, [](auto) {});
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(full.message().find("queue full"), std::string::npos);
  std::thread stopper([&] { batcher->Stop(); });
  // The queue is full, so probes are refused (never queued) until Stop() has flagged the
  // batcher; only then release the running batch, so the queued request is never taken.
  while (batcher->Submit({9}, [](auto) {}).code() != absl::StatusCode::kUnavailable) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  gate.Notify();
  stopper.join();
  running.done.WaitForNotification();
  queued.done.WaitForNotification();
  EXPECT_TRUE(running.value.ok());
  EXPECT_EQ(queued.value.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(batcher->Submit({1}, [](auto) {}).code(), absl::StatusCode::kUnavailable);
}

TEST(DynamicBatcherTest, BatchErrorGoesToEveryRequestInTheBatch) {
  BatcherOptions opts;
  opts.max_wait = absl::ZeroDuration();
  Batcher batcher(opts, [](const std::vector<int>&) -> absl::StatusOr<std::vector<std::string>> {
    return absl::InternalError("model failed");
  });
  Result r;
  ASSERT_TRUE(batcher.Submit({1}, r.Callback()).ok());
  r.done.WaitForNotification();
  EXPECT_EQ(r.value.status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(r.value.status().message(), "model failed");
}

TEST(DynamicBatcherTest, ThrowingBatchFailsItsRequestsAndTheNextBatchRuns) {
  // A LibTorch error inside the model (a shape it refuses, out of memory) is an exception:
  // it fails the batch it happened in, never the server.
  BatcherOptions opts;
  opts.max_wait = absl::ZeroDuration();
  Batcher batcher(opts, [](const std::vector<int>& items)
                            -> absl::StatusOr<std::vector<std::string>> {
    if (items[0] < 0) throw std::invalid_argument("negative item");
    if (items[0] == 0) throw std::bad_alloc();
    return std::vector<std::string>(items.size(), "ok");
  });
  Result bad, oom, next;
  ASSERT_TRUE(batcher.Submit({-1, 5}, bad.Callback()).ok());
  bad.done.WaitForNotification();
  EXPECT_EQ(bad.value.status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(bad.value.status().message(), "batch of 2 items: negative item");
  ASSERT_TRUE(batcher.Submit({0}, oom.Callback()).ok());
  oom.done.WaitForNotification();
  EXPECT_EQ(oom.value.status().code(), absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(batcher.Submit({3}, next.Callback()).ok());
  next.done.WaitForNotification();
  ASSERT_TRUE(next.value.ok()) << next.value.status();
  EXPECT_EQ(*next.value, std::vector<std::string>{"ok"});
}

// Counts what the batcher reports.
class CountingObserver : public BatchObserver {
 public:
  void OnQueueDepth(int queued_items) override {
    absl::MutexLock lock(&mu);
    max_depth = std::max(max_depth, queued_items);
  }
  void OnRejected(int items) override {
    absl::MutexLock lock(&mu);
    rejected += items;
  }
  void OnBatch(int items, absl::Duration) override {
    absl::MutexLock lock(&mu);
    batched += items;
    ++batches;
  }
  absl::Mutex mu;
  int max_depth = 0, rejected = 0, batched = 0, batches = 0;
};

TEST(DynamicBatcherTest, ObserverSeesDepthBatchesAndRejections) {
  Recorder rec;
  CountingObserver observer;
  BatcherOptions opts;
  opts.max_batch = 8;
  opts.max_wait = absl::Seconds(10);  // runs when 8 items are queued
  opts.max_queued = 8;
  opts.observer = &observer;
  {
    Batcher batcher(opts, rec.Fn());
    Result a, b;
    ASSERT_TRUE(batcher.Submit({1, 2, 3}, a.Callback()).ok());
    EXPECT_EQ(batcher.Submit({4, 5, 6, 7, 8, 9}, [](auto) {}).code(),
              absl::StatusCode::kResourceExhausted);
    ASSERT_TRUE(batcher.Submit({4, 5, 6, 7, 8}, b.Callback()).ok());
    a.done.WaitForNotification();
    b.done.WaitForNotification();
  }
  absl::MutexLock lock(&observer.mu);
  EXPECT_EQ(observer.max_depth, 8);
  EXPECT_EQ(observer.rejected, 6);
  EXPECT_EQ(observer.batched, 8);
  EXPECT_EQ(observer.batches, 1);
}

TEST(DynamicBatcherTest, RejectsBadOptions) {
  BatcherOptions opts;
  opts.max_batch = 0;
  EXPECT_EQ(Validate(opts).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace rlhf::batching
