// The learner's published policy versions: the newest `keep` versions' parameters, cut into
// WeightChunks (codec::WeightChunker: copy + CRC32C) once at publication, so that every
// GetWeights stream only writes ready messages; and watchers told of each new version.
//
// A published version is immutable, so a GetWeights stream holds a shared_ptr to it and reads
// without locks; a version dropped from the store lives until its last stream ends.
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
#include "rlhf/v1/tensor.pb.h"

namespace rlhf::learner {

struct PublishedVersion {
  int64_t version = 0;
  std::vector<rlhf::v1::WeightChunk> chunks;  // the whole stream, last chunk flagged
  int64_t total_bytes = 0;                    // tensor bytes (not counting chunk headers)
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

  // REQUIRES: keep >= 1, chunk_bytes > 0.
  WeightStore(int keep, int64_t chunk_bytes);
  WeightStore(const WeightStore&) = delete;
  WeightStore& operator=(const WeightStore&) = delete;

  // Publishes `tensors` as `version` (chunked and checksummed here; the tensors are not kept),
  // drops the oldest beyond `keep`, and tells the watchers. Errors: WeightChunker's (bad names
  // or dtypes); nothing is published then. REQUIRES: version > latest().
  absl::Status Publish(int64_t version,
                       const std::vector<std::pair<std::string, torch::Tensor>>& tensors)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Returns `version` (0 = the newest). Errors: INVALID_ARGUMENT for a negative version,
  // NOT_FOUND before the first publication, FAILED_PRECONDITION for a version no longer (or
  // not yet) kept.
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
  const int64_t chunk_bytes_;
  // Held while watchers are called, so that RemoveWatcher waits out a call in progress.
  mutable absl::Mutex notify_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable absl::Mutex mu_;
  std::deque<std::shared_ptr<const PublishedVersion>> versions_ ABSL_GUARDED_BY(mu_);
  std::set<Watcher*> watchers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rlhf::learner

#endif  // RLHF_SERVICES_LEARNER_WEIGHT_STORE_H_
