#include "services/learner/run_ledger.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <unordered_set>

#include "absl/strings/str_cat.h"
#include "services/learner/trajectory_journal.h"

namespace rlhf::learner {

nlohmann::json RunLedger::ToJson() const {
  return {
      {"generated", generated},
      {"consumed", consumed},
      {"dropped",
       {{"stale", dropped_stale}, {"invalid", dropped_invalid}, {"shutdown", dropped_shutdown}}},
      {"in_flight_at_stop", in_flight_at_stop},
      {"duplicates_received", duplicates_received},
      {"consumed_twice", consumed_twice},
      {"consumed_unknown", consumed_unknown},
      {"unknown_ids", unknown_ids},
      {"generated_twice", generated_twice},
      {"learner_restarts", learner_restarts},
      {"balanced", balanced()}};
}

absl::StatusOr<RunLedger> ComputeRunLedger(const std::vector<std::string>& generated_logs,
                                           const std::string& journal_path) {
  RunLedger r;
  std::unordered_set<std::string> generated;
  for (const std::string& path : generated_logs) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
    std::stringstream buffer;
    buffer << in.rdbuf();
    const std::string text = buffer.str();
    size_t at = 0;
    for (size_t nl; (nl = text.find('\n', at)) != std::string::npos; at = nl + 1) {
      if (nl == at) continue;
      if (!generated.insert(text.substr(at, nl - at)).second) ++r.generated_twice;
    }
  }
  absl::StatusOr<JournalState> state = ReadJournal(journal_path);
  if (!state.ok()) return state.status();
  using Fate = JournalState::Fate;
  r.generated = static_cast<int64_t>(generated.size());
  r.duplicates_received = state->duplicates;
  r.consumed_twice = state->consumed_twice;
  r.consumed_unknown = state->consumed_unknown;
  r.learner_restarts = std::max<int64_t>(0, state->resumes - 1);
  for (const auto& [id, e] : state->ids) {
    if (generated.count(id) == 0) {
      ++r.unknown_ids;
      continue;
    }
    switch (e.fate) {
      case Fate::kConsumed:
        ++r.consumed;
        break;
      case Fate::kStaleOnArrival:
      case Fate::kStaleAtPop:
        ++r.dropped_stale;
        break;
      case Fate::kInvalid:
        ++r.dropped_invalid;
        break;
      case Fate::kQueued:
      case Fate::kCancelled:
        ++r.dropped_shutdown;
        break;
    }
  }
  r.in_flight_at_stop = r.generated - (static_cast<int64_t>(state->ids.size()) - r.unknown_ids);
  return r;
}

}  // namespace rlhf::learner
