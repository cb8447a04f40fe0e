#include "common/train/reward_data.h"

#include <algorithm>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"

namespace rlhf::train {

std::vector<int64_t> ScoreTokens(const tokenizer::Tokenizer& tok, std::string_view prompt,
                                 std::string_view response) {
  std::vector<int64_t> out;
  if (tok.bos_id() >= 0) out.push_back(tok.bos_id());
  for (int id : tok.Encode(prompt)) out.push_back(id);
  for (int id : tok.Encode(response)) out.push_back(id);
  return out;
}

absl::StatusOr<std::vector<TokenizedPair>> TokenizePairs(
    const std::vector<data::PreferencePair>& pairs, const tokenizer::Tokenizer& tok,
    int64_t max_seq_len, const std::string& path, const data::ReadOptions& options,
    data::ReadReport* report, std::vector<int64_t>* kept_lines) {
  std::vector<TokenizedPair> out;
  out.reserve(pairs.size());
  for (const data::PreferencePair& p : pairs) {
    TokenizedPair t;
    t.chosen = ScoreTokens(tok, p.prompt, p.chosen);
    t.rejected =
        ScoreTokens(tok, p.rejected_prompt.empty() ? p.prompt : p.rejected_prompt, p.rejected);
    t.p_chosen = static_cast<float>(p.p_chosen);
    const size_t longest = std::max(t.chosen.size(), t.rejected.size());
    if (static_cast<int64_t>(longest) > max_seq_len) {
      const std::string problem = absl::StrCat(path, ":", p.line, ": ", longest,
                                               " tokens; the context is ", max_seq_len);
      if (options.strict) return absl::InvalidArgumentError(problem);
      report->problems.push_back(problem);
      if (++report->skipped > options.max_bad) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": more than ", options.max_bad, " bad records (raise --max-bad ",
                         "or the context); latest: ", problem));
      }
      continue;
    }
    if (kept_lines != nullptr) kept_lines->push_back(p.line);
    out.push_back(std::move(t));
  }
  return out;
}

LengthBaselines ComputeLengthBaselines(const std::vector<data::PreferencePair>& pairs) {
  LengthBaselines b;
  if (pairs.empty()) return b;
  for (const auto& p : pairs) {
    const std::string& better = p.p_chosen >= 0.5 ? p.chosen : p.rejected;
    const std::string& worse = p.p_chosen >= 0.5 ? p.rejected : p.chosen;
    if (better.size() > worse.size()) {
      b.longer_wins += 1;
    } else if (better.size() < worse.size()) {
      b.shorter_wins += 1;
    } else {
      b.longer_wins += 0.5;
      b.shorter_wins += 0.5;
    }
  }
  b.longer_wins /= static_cast<double>(pairs.size());
  b.shorter_wins /= static_cast<double>(pairs.size());
  return b;
}

int64_t ExcludePairs(const std::vector<data::PreferencePair>& exclude,
                     std::vector<data::PreferencePair>* pairs) {
  using Key = std::tuple<std::string, std::string, std::string>;
  std::set<Key> keys;
  for (const auto& p : exclude) keys.emplace(p.prompt, p.chosen, p.rejected);
  const size_t before = pairs->size();
  pairs->erase(std::remove_if(pairs->begin(), pairs->end(),
                              [&](const data::PreferencePair& p) {
                                return keys.count(Key(p.prompt, p.chosen, p.rejected)) > 0;
                              }),
               pairs->end());
  return static_cast<int64_t>(before - pairs->size());
}

}  // namespace rlhf::train
