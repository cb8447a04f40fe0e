// The learner's published policy versions: the newest `keep` versions' parameters, for
// GetWeights streams to read while training goes on, and watchers told of each new version.
//
// A published version is immutable (its tensors are copies that training never touches), so a
// GetWeights stream holds a shared_ptr to it and reads without locks; a version dropped from the
// store lives until its last stream ends.
//
// Thread-safe.
#ifndef RLHF_SERVICES_LEARNER_WEIGHT_STORE_H_
#define RLHF_SERVICES_LEARNER_WEIGHT_STORE_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace rlhf::learner {

struct PublishedVersion {
  int64_t version = 0;
  std::vector<std::pair<std::string, torch::Tensor>> tensors;  // contiguous CPU copies
  int64_t total_bytes = 0;
};

class WeightStore {
 public:
  // Told of every published version (called outside the store's lock, in version order from
  // one publishing thread). Must not block.
  class Watcher {
   public:
    virtual ~Watcher() = default;
    virtual void OnPublished(int64_t version, int64_t total_bytes) = 0;
  };

  // REQUIRES: keep >= 1.
  explicit WeightStore(int keep);
  WeightStore(const WeightStore&) = delete;
  WeightStore& operator=(const WeightStore&) = delete;

  // Publishes `tensors` (copied to contiguous CPU memory) as `version`, drops the oldest beyond
  // `keep`, and tells the watchers. REQUIRES: version > latest().
  void Publish(int64_t version, const std::vector<std::pair<std::string, torch::Tensor>>& tensors)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Returns `version` (0 or below = the newest). Errors: NOT_FOUND before the first
  // publication, FAILED_PRECONDITION for a version no longer (or not yet) kept.
  absl::StatusOr<std::shared_ptr<const PublishedVersion>> Get(int64_t version) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // The newest version, -1 before the first publication.
  int64_t latest() const ABSL_LOCKS_EXCLUDED(mu_);

  // Adds / removes a watcher (not owned). After RemoveWatcher returns, the watcher is not called
  // again. AddWatcher returns the newest version at that moment (-1 if none) and its size.
  std::pair<int64_t, int64_t> AddWatcher(Watcher* watcher) ABSL_LOCKS_EXCLUDED(mu_);
  void RemoveWatcher(Watcher* watcher) ABSL_LOCKS_EXCLUDED(mu_, notify_mu_);

 private:
  const int keep_;
  // Held while watchers are called, so that RemoveWatcher waits out a call in progress.
  mutable absl::Mutex notify_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable absl::Mutex mu_;
  std::deque<std::shared_ptr<const PublishedVersion>> versions_ ABSL_GUARDED_BY(mu_);
  std::set<Watcher*> watchers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rlhf::learner

#endif  // RLHF_SERVICES_LEARNER_WEIGHT_STORE_H_
