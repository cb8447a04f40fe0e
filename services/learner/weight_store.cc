#include "services/learner/weight_store.h"

#include "absl/strings/str_cat.h"
#include "common/codec/weight_chunks.h"
#include "common/status/status_macros.h"
#include "glog/logging.h"

namespace rlhf::learner {

WeightStore::WeightStore(int keep, int64_t chunk_bytes) : keep_(keep), chunk_bytes_(chunk_bytes) {
  CHECK_GE(keep, 1);
  CHECK_GT(chunk_bytes, 0);
}

absl::Status WeightStore::Publish(
    int64_t version, const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
  auto published = std::make_shared<PublishedVersion>();
  published->version = version;
  codec::NamedTensors detached;
  for (const auto& [name, tensor] : tensors) detached.emplace_back(name, tensor.detach());
  RLHF_ASSIGN_OR_RETURN(auto chunker,
                        codec::WeightChunker::Create(std::move(detached), version, chunk_bytes_));
  while (!chunker->Done()) {
    published->chunks.emplace_back();
    RLHF_RETURN_IF_ERROR(chunker->Next(&published->chunks.back()));
  }
  published->total_bytes = chunker->total_bytes();
  absl::MutexLock notify(&notify_mu_);
  std::vector<Watcher*> watchers;
  {
    absl::MutexLock lock(&mu_);
    if (!versions_.empty() && version <= versions_.back()->version) {
      return absl::FailedPreconditionError(absl::StrCat(
          "policy versions must increase: ", version, " after ", versions_.back()->version));
    }
    versions_.push_back(published);
    while (static_cast<int>(versions_.size()) > keep_) versions_.pop_front();
    watchers.assign(watchers_.begin(), watchers_.end());
  }
  for (Watcher* w : watchers) w->OnPublished(version, published->total_bytes);
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const PublishedVersion>> WeightStore::Get(int64_t version) const {
  if (version < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("policy version ", version, " is negative (0 asks for the newest)"));
  }
  absl::MutexLock lock(&mu_);
  if (versions_.empty()) return absl::NotFoundError("no policy version published yet");
  if (version == 0) return versions_.back();
  for (const auto& v : versions_) {
    if (v->version == version) return v;
  }
  return absl::FailedPreconditionError(
      absl::StrCat("policy version ", version, " is not kept (kept: ", versions_.front()->version,
                   "..", versions_.back()->version, ")"));
}

int64_t WeightStore::latest() const {
  absl::MutexLock lock(&mu_);
  return versions_.empty() ? -1 : versions_.back()->version;
}

std::pair<int64_t, int64_t> WeightStore::AddWatcher(Watcher* watcher) {
  absl::MutexLock lock(&mu_);
  watchers_.insert(watcher);
  if (versions_.empty()) return {-1, 0};
  return {versions_.back()->version, versions_.back()->total_bytes};
}

void WeightStore::RemoveWatcher(Watcher* watcher) {
  absl::MutexLock notify(&notify_mu_);
  absl::MutexLock lock(&mu_);
  watchers_.erase(watcher);
}

}  // namespace rlhf::learner
