// Implementation of the prompt pool: JSONL reading, epoch permutations and lease bookkeeping.
#include "services/learner/prompt_pool.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status/status_macros.h"

namespace rlhf::learner {
namespace {

// SplitMix64 finalizer: spreads (seed, epoch) over the whole 64-bit seed space.
uint64_t Mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Returns a uniform integer in [0, bound) by rejection (no modulo bias); mt19937_64's output is
// specified by the standard, so this is the same everywhere (std distributions are not).
uint64_t UniformBelow(std::mt19937_64& rng, uint64_t bound) {
  const uint64_t threshold = (0 - bound) % bound;  // 2^64 mod bound
  for (;;) {
    const uint64_t r = rng();
    if (r >= threshold) return r % bound;
  }
}

std::string LeaseId(uint64_t number) { return absl::StrCat("L", number); }

// Parses "L<n>"; returns false for anything else.
bool ParseLeaseId(const std::string& id, uint64_t* number) {
  return id.size() > 1 && id[0] == 'L' && absl::SimpleAtoi(id.substr(1), number);
}

// Removes one occurrence of `value`; returns whether there was one.
bool EraseOne(std::vector<int64_t>& values, int64_t value) {
  auto it = std::find(values.begin(), values.end(), value);
  if (it == values.end()) return false;
  values.erase(it);
  return true;
}

// Returns the object of one non-blank line, checked to hold a non-empty string "prompt", or an
// error naming path and line.
absl::StatusOr<nlohmann::json> ParsePromptLine(const std::string& line, const std::string& where) {
  nlohmann::json j = nlohmann::json::parse(line, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(where, ": not valid JSON"));
  if (!j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": expected a JSON object"));
  }
  auto it = j.find("prompt");
  if (it == j.end()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": no \"prompt\" field"));
  }
  if (!it->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": \"prompt\" is not a string"));
  }
  if (it->get_ref<const std::string&>().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": empty prompt"));
  }
  return j;
}

}  // namespace

absl::StatusOr<std::vector<nlohmann::json>> ReadPromptRecordsJsonl(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": is a directory, not a JSONL file"));
  }
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::vector<nlohmann::json> records;
  std::string line;
  for (int64_t line_number = 1; std::getline(in, line); ++line_number) {
    if (line.find_first_not_of(" \t\r\n") == std::string::npos) continue;
    RLHF_ASSIGN_OR_RETURN(nlohmann::json record,
                          ParsePromptLine(line, absl::StrCat(path, ":", line_number)));
    records.push_back(std::move(record));
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": read error"));
  if (records.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": no prompts"));
  return records;
}

absl::StatusOr<std::vector<std::string>> ReadPromptsJsonl(const std::string& path) {
  RLHF_ASSIGN_OR_RETURN(std::vector<nlohmann::json> records, ReadPromptRecordsJsonl(path));
  std::vector<std::string> prompts;
  prompts.reserve(records.size());
  for (nlohmann::json& r : records)
    prompts.push_back(std::move(r["prompt"].get_ref<std::string&>()));
  return prompts;
}

absl::Status Validate(const PromptPoolOptions& options) {
  if (options.lease_duration <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("prompt pool: lease_duration must be > 0, got ",
                                                   absl::FormatDuration(options.lease_duration)));
  }
  if (options.max_lease_prompts < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prompt pool: max_lease_prompts must be >= 1, got ", options.max_lease_prompts));
  }
  if (options.group_size < 1 || options.group_size > options.max_lease_prompts) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prompt pool: group_size must be in [1, max_lease_prompts = ", options.max_lease_prompts,
        "], got ", options.group_size));
  }
  if (!options.now) return absl::InvalidArgumentError("prompt pool: no clock (options.now)");
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<PromptPool>> PromptPool::Create(
    std::vector<rlhf::v1::Prompt> prompts, PromptPoolOptions options) {
  RLHF_RETURN_IF_ERROR(Validate(options));
  if (prompts.empty()) return absl::InvalidArgumentError("prompt pool: no prompts");
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (prompts[i].index() != static_cast<int64_t>(i)) {
      return absl::InvalidArgumentError(absl::StrCat("prompt pool: prompt ", i, " has index ",
                                                     prompts[i].index(), ", expected ", i));
    }
    if (prompts[i].tokens().empty()) {
      return absl::InvalidArgumentError(absl::StrCat("prompt pool: prompt ", i, " has no tokens"));
    }
  }
  return std::unique_ptr<PromptPool>(new PromptPool(std::move(prompts), std::move(options)));
}

PromptPool::PromptPool(std::vector<rlhf::v1::Prompt> prompts, PromptPoolOptions options)
    : prompts_(std::move(prompts)), options_(std::move(options)) {}

absl::Status PromptPool::Restore(int64_t position) {
  absl::MutexLock lock(&mu_);
  if (position < 0) {
    return absl::InvalidArgumentError(absl::StrCat("prompt pool: negative position ", position));
  }
  if (stats_.prompts_leased != 0) {  // every lease has at least one slot
    return absl::FailedPreconditionError("prompt pool: Restore after the first lease");
  }
  position_ = restored_position_ = position;
  return absl::OkStatus();
}

absl::Status PromptPool::StartLeaseNumbersAt(uint64_t first) {
  absl::MutexLock lock(&mu_);
  if (first == 0) return absl::InvalidArgumentError("prompt pool: lease numbers start at 1");
  if (stats_.prompts_leased != 0) {
    return absl::FailedPreconditionError("prompt pool: StartLeaseNumbersAt after the first lease");
  }
  next_lease_ = first;
  return absl::OkStatus();
}

int PromptPool::LeaseSize(int max_prompts) const {
  const int k = options_.group_size;
  return k == 1 ? max_prompts : std::max(1, max_prompts / k) * k;
}

int64_t PromptPool::position() const {
  absl::MutexLock lock(&mu_);
  return position_;
}

int64_t PromptPool::DrawFresh() {
  const int64_t n = num_prompts();
  const int64_t epoch = position_ / n;
  if (epoch != perm_epoch_) {
    perm_.resize(n);
    for (int64_t i = 0; i < n; ++i) perm_[i] = i;
    std::mt19937_64 rng(Mix(options_.seed ^ Mix(static_cast<uint64_t>(epoch))));
    for (int64_t i = n - 1; i > 0; --i) {
      std::swap(perm_[i], perm_[UniformBelow(rng, static_cast<uint64_t>(i) + 1)]);
    }
    perm_epoch_ = epoch;
  }
  return perm_[position_++ % n];
}

absl::StatusOr<rlhf::v1::PromptLease> PromptPool::Lease(const std::string& worker_id,
                                                        int max_prompts) {
  absl::MutexLock lock(&mu_);
  if (closed_) return absl::FailedPreconditionError("prompt pool is closed: the run is finishing");
  if (max_prompts < 1 || max_prompts > options_.max_lease_prompts) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_prompts must be in [1, ", options_.max_lease_prompts, "], got ", max_prompts));
  }
  const absl::Time now = options_.now();
  ExpireOverdue(now);
  const uint64_t number = next_lease_++;
  const int k = options_.group_size;
  const int slots = LeaseSize(max_prompts);
  LiveLease lease{worker_id, now + options_.lease_duration, {}};
  lease.pending.reserve(slots);
  rlhf::v1::PromptLease out;
  out.set_lease_id(LeaseId(number));
  out.set_expires_in_seconds(absl::ToDoubleSeconds(options_.lease_duration));
  for (int i = 0; i < slots; i += k) {  // one slot, or one group of k copies
    int64_t index;
    if (!requeued_.empty()) {
      index = requeued_.front();
      requeued_.pop_front();
      stats_.prompts_reissued += k;
    } else {
      index = DrawFresh();
    }
    for (int copy = 0; copy < k; ++copy) {
      *out.add_prompts() = prompts_[index];
      lease.pending.push_back(index);
    }
  }
  stats_.prompts_leased += slots;
  stats_.outstanding += slots;
  leases_.emplace(number, std::move(lease));
  return out;
}

absl::StatusOr<int> PromptPool::Return(const std::string& lease_id) {
  absl::MutexLock lock(&mu_);
  ExpireOverdue(options_.now());
  uint64_t number = 0;
  auto it = ParseLeaseId(lease_id, &number) ? leases_.find(number) : leases_.end();
  if (it == leases_.end()) {
    return absl::NotFoundError(
        absl::StrCat("lease ", lease_id, " is unknown, expired, returned or finished"));
  }
  const int returned = KillLease(it);
  stats_.prompts_returned += returned;
  return returned;
}

void PromptPool::Complete(const std::string& lease_id, int64_t prompt_index) {
  absl::MutexLock lock(&mu_);
  ExpireOverdue(options_.now());
  uint64_t number = 0;
  if (!ParseLeaseId(lease_id, &number)) {
    ++stats_.ignored_completions;
    return;
  }
  if (auto it = leases_.find(number); it != leases_.end()) {
    if (!EraseOne(it->second.pending, prompt_index)) {
      ++stats_.ignored_completions;
      return;
    }
    ++stats_.prompts_completed;
    --stats_.outstanding;
    if (it->second.pending.empty()) leases_.erase(it);
    return;
  }
  if (auto it = dead_leases_.find(number); it != dead_leases_.end()) {
    if (EraseOne(it->second, prompt_index)) {
      ++stats_.late_completions;
      if (it->second.empty()) dead_leases_.erase(it);
      return;
    }
  }
  ++stats_.ignored_completions;
}

absl::Status PromptPool::CheckTrajectory(const rlhf::v1::Trajectory& t) const {
  if (t.lease_id().empty()) return absl::OkStatus();
  uint64_t number = 0;
  if (!ParseLeaseId(t.lease_id(), &number)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "lease_id \"", t.lease_id(), "\" is not a lease id this learner grants (L<n>)"));
  }
  {
    absl::MutexLock lock(&mu_);
    if (number >= next_lease_) {
      return absl::InvalidArgumentError(absl::StrCat("lease_id ", t.lease_id(),
                                                     " was never granted (the next lease is ",
                                                     LeaseId(next_lease_), ")"));
    }
  }
  if (t.prompt_index() < 0 || t.prompt_index() >= num_prompts()) {
    return absl::InvalidArgumentError(absl::StrCat("prompt_index = ", t.prompt_index(),
                                                   " is outside the pool's [0, ", num_prompts(),
                                                   ")"));
  }
  const auto& want = prompts_[t.prompt_index()].tokens();
  if (!std::equal(want.begin(), want.end(), t.prompt_tokens().begin(), t.prompt_tokens().end())) {
    return absl::InvalidArgumentError(absl::StrCat("prompt_tokens (", t.prompt_tokens_size(),
                                                   " tokens) differ from those of prompt ",
                                                   t.prompt_index(), " (", want.size(),
                                                   " tokens) leased in ", t.lease_id()));
  }
  return absl::OkStatus();
}

std::vector<PromptPool::VoidedGroup> PromptPool::TakeVoidedGroups() {
  absl::MutexLock lock(&mu_);
  std::vector<VoidedGroup> out;
  out.swap(voided_);
  return out;
}

void PromptPool::Expire() {
  absl::MutexLock lock(&mu_);
  ExpireOverdue(options_.now());
}

void PromptPool::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
}

PromptPoolStats PromptPool::Stats() const {
  absl::MutexLock lock(&mu_);
  PromptPoolStats s = stats_;
  s.requeued = static_cast<int64_t>(requeued_.size()) * options_.group_size;
  s.leases_active = static_cast<int64_t>(leases_.size());
  s.position = position_;
  return s;
}

void PromptPool::ExpireOverdue(absl::Time now) {
  // Leases all last lease_duration, so issue order is expiry order (for a monotonic clock; a
  // clock that steps back only delays expiry).
  while (!leases_.empty() && leases_.begin()->second.expiry <= now) {
    stats_.prompts_expired += KillLease(leases_.begin());
  }
}

int PromptPool::KillLease(std::map<uint64_t, LiveLease>::iterator it) {
  std::vector<int64_t>& pending = it->second.pending;
  const int n = static_cast<int>(pending.size());
  const int k = options_.group_size;
  if (k == 1) {
    requeued_.insert(requeued_.end(), pending.begin(), pending.end());
  } else {
    // Pending slots per prompt, in lease order; each incomplete group goes back whole.
    std::vector<std::pair<int64_t, int>> counts;
    for (int64_t index : pending) {
      auto c = std::find_if(counts.begin(), counts.end(),
                            [index](const auto& e) { return e.first == index; });
      if (c == counts.end()) {
        counts.emplace_back(index, 1);
      } else {
        ++c->second;
      }
    }
    for (const auto& [index, count] : counts) {
      const int groups = (count + k - 1) / k;
      for (int g = 0; g < groups; ++g) requeued_.push_back(index);
      stats_.completions_voided += static_cast<int64_t>(groups) * k - count;
      voided_.push_back(VoidedGroup{LeaseId(it->first), index});
    }
  }
  stats_.outstanding -= n;
  if (n > 0) {
    dead_leases_.emplace(it->first, std::move(pending));
    while (dead_leases_.size() > static_cast<size_t>(kRememberedDeadLeases)) {
      dead_leases_.erase(dead_leases_.begin());
    }
  }
  leases_.erase(it);
  return n;
}

}  // namespace rlhf::learner
