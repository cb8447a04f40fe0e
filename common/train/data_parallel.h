// What the reward and SFT trainers share to run data-parallel over a dist::ProcessGroup: every
// rank holds the whole data set and the same model, walks the same (seed, epoch) order, and
// trains a deterministic slice of each global batch; gradients are averaged by
// dist::GradientSync. These helpers are the pieces around that: agreeing that the inputs match,
// making the starting parameters identical, and slicing a batch.
//
// All functions taking a group are collectives when the group has more than one rank (every rank
// calls them, in the same order) and no-ops for a null group or a group of one.
#ifndef RLHF_COMMON_TRAIN_DATA_PARALLEL_H_
#define RLHF_COMMON_TRAIN_DATA_PARALLEL_H_

#include <cstdint>
#include <functional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/dist/process_group.h"
#include "common/model/llama.h"

namespace rlhf::train {

// A 64-bit FNV-1a over integers: a fingerprint of data and options that is the same in every
// process (absl::Hash is salted per process).
class Fingerprint {
 public:
  void Add(int64_t v) {
    for (int i = 0; i < 8; ++i) {
      h_ = (h_ ^ ((static_cast<uint64_t>(v) >> (8 * i)) & 0xff)) * 0x100000001b3ULL;
    }
  }
  int64_t value() const { return static_cast<int64_t>(h_); }

 private:
  uint64_t h_ = 0xcbf29ce484222325ULL;
};

inline int WorldSize(const dist::ProcessGroup* group) {
  return group == nullptr ? 1 : group->world_size();
}
inline int Rank(const dist::ProcessGroup* group) { return group == nullptr ? 0 : group->rank(); }
inline bool IsMain(const dist::ProcessGroup* group) { return Rank(group) == 0; }

// [begin, end) of this rank's share of a batch of n items: contiguous, sizes differ by at most
// one, possibly empty when n < world size.
inline std::pair<int64_t, int64_t> RankSlice(int64_t n, const dist::ProcessGroup* group) {
  const int64_t world = WorldSize(group), rank = Rank(group);
  return {n * rank / world, n * (rank + 1) / world};
}

// `local` made everyone's: see dist::ProcessGroup::AllOk. Without a group, `local`.
absl::Status AgreeOnStatus(dist::ProcessGroup* group, const absl::Status& local);

// Runs `fn`, a rank's local part of a step (forward and backward), and makes its outcome
// everyone's: an exception (a LibTorch error) becomes "<what>: <message>"
// (status::CurrentExceptionToStatus), and AgreeOnStatus fails every rank when one failed, before
// any waits in the gradient all-reduce. A collective.
absl::Status GuardedLocalStep(dist::ProcessGroup* group, absl::string_view what,
                              const std::function<void()>& fn);

// Checks that `fingerprint` (of the data and options) is the same on every rank, then overwrites
// the parameters and buffers of `model` with rank 0's.
absl::Status JoinDataParallel(dist::ProcessGroup* group, int64_t fingerprint, model::Llama& model);

}  // namespace rlhf::train

#endif  // RLHF_COMMON_TRAIN_DATA_PARALLEL_H_
