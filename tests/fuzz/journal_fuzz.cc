// Fuzz target: the learner's trajectory journal reader (services/learner/trajectory_journal.h)
// on arbitrary bytes. Whatever it returns must be consistent: every queued trajectory it hands
// back is an id it reports as queued.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "services/learner/trajectory_journal.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using rlhf::learner::JournalState;
  std::vector<rlhf::v1::Trajectory> queued;
  absl::StatusOr<JournalState> state = rlhf::learner::ParseJournal(
      std::string(reinterpret_cast<const char*>(data), size), "fuzz.journal", &queued);
  if (!state.ok()) return 0;
  for (const auto& t : queued) {
    auto it = state->ids.find(t.id());
    if (it == state->ids.end() || it->second.fate != JournalState::Fate::kQueued) std::abort();
  }
  return 0;
}
