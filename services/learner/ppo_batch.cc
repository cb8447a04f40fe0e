#include "services/learner/ppo_batch.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace rlhf::learner::internal {
namespace {

// Rows of `per_row` [B, L, ...] at positions [B, T].
torch::Tensor AtPositions(const torch::Tensor& per_row, const torch::Tensor& positions) {
  if (per_row.dim() == 2) return per_row.gather(1, positions);
  return per_row.gather(
      1, positions.unsqueeze(-1).expand({positions.size(0), positions.size(1), per_row.size(2)}));
}

}  // namespace

absl::Status CheckTrajectory(const rlhf::v1::Trajectory& t, const model::LlamaConfig& c) {
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("trajectory '", t.id(), "': ", what));
  };
  if (t.prompt_tokens_size() == 0) return bad("empty prompt");
  if (t.response_tokens_size() == 0) return bad("empty response");
  if (t.ref_logprobs_size() != t.response_tokens_size()) {
    return bad("ref_logprobs and response_tokens differ in length");
  }
  if (t.prompt_tokens_size() + t.response_tokens_size() > c.max_seq_len) {
    return bad(absl::StrCat("longer than the context (", c.max_seq_len, ")"));
  }
  for (const auto* tokens : {&t.prompt_tokens(), &t.response_tokens()}) {
    for (int64_t id : *tokens) {
      if (id < 0 || id >= c.vocab_size) return bad(absl::StrCat("token id ", id, " out of range"));
    }
  }
  return absl::OkStatus();
}

Batch MakeBatch(const std::vector<rlhf::v1::Trajectory>& trajectories, int64_t version) {
  const int64_t b = static_cast<int64_t>(trajectories.size());
  int64_t max_len = 0, max_resp = 0;
  for (const auto& t : trajectories) {
    max_len = std::max<int64_t>(max_len, t.prompt_tokens_size() + t.response_tokens_size());
    max_resp = std::max<int64_t>(max_resp, t.response_tokens_size());
  }
  Batch out;
  out.tokens = torch::zeros({b, max_len}, torch::kLong);
  out.attention = torch::zeros({b, max_len}, torch::kLong);
  out.positions = torch::zeros({b, max_resp}, torch::kLong);
  out.targets = torch::zeros({b, max_resp}, torch::kLong);
  out.mask = torch::zeros({b, max_resp}, torch::kFloat);
  out.ref_logprobs = torch::zeros({b, max_resp}, torch::kFloat);
  out.behav_logprobs = torch::zeros({b, max_resp}, torch::kFloat);
  out.stale = torch::zeros({b}, torch::kBool);
  out.scores = torch::zeros({b}, torch::kFloat);
  out.contains_eos = torch::zeros({b}, torch::kBool);
  auto tokens = out.tokens.accessor<int64_t, 2>();
  auto attention = out.attention.accessor<int64_t, 2>();
  auto positions = out.positions.accessor<int64_t, 2>();
  auto targets = out.targets.accessor<int64_t, 2>();
  auto mask = out.mask.accessor<float, 2>();
  auto ref = out.ref_logprobs.accessor<float, 2>();
  auto behav = out.behav_logprobs.accessor<float, 2>();
  for (int64_t i = 0; i < b; ++i) {
    const auto& t = trajectories[i];
    // Without the worker's log-probs a trajectory cannot be corrected: it counts as on-policy.
    const bool has_behav = t.behaviour_logprobs_size() == t.response_tokens_size();
    out.stale[i] = has_behav && t.policy_version() < version;
    const int64_t p = t.prompt_tokens_size();
    for (int64_t j = 0; j < p; ++j) tokens[i][j] = t.prompt_tokens(j);
    for (int64_t j = 0; j < t.response_tokens_size(); ++j) {
      tokens[i][p + j] = t.response_tokens(j);
      positions[i][j] = p - 1 + j;
      targets[i][j] = t.response_tokens(j);
      mask[i][j] = 1.0f;
      ref[i][j] = t.ref_logprobs(j);
      if (has_behav) behav[i][j] = t.behaviour_logprobs(j);
    }
    for (int64_t j = 0; j < p + t.response_tokens_size(); ++j) attention[i][j] = 1;
    out.scores[i] = t.reward();
    out.contains_eos[i] = t.finish_reason() == rlhf::v1::FINISH_REASON_EOS;
  }
  return out;
}

Batch Select(const Batch& b, const torch::Tensor& idx) {
  Batch s;
  s.tokens = b.tokens.index_select(0, idx);
  s.attention = b.attention.index_select(0, idx);
  s.positions = b.positions.index_select(0, idx);
  s.targets = b.targets.index_select(0, idx);
  s.mask = b.mask.index_select(0, idx);
  s.ref_logprobs = b.ref_logprobs.index_select(0, idx);
  s.behav_logprobs = b.behav_logprobs.index_select(0, idx);
  s.stale = b.stale.index_select(0, idx);
  s.scores = b.scores.index_select(0, idx);
  s.contains_eos = b.contains_eos.index_select(0, idx);
  return s;
}

PolicyOutput RunPolicy(model::Llama& policy, const Batch& b, double temperature, Entropy entropy) {
  torch::Tensor hidden = AtPositions(policy->Trunk(b.tokens, b.attention), b.positions);
  torch::Tensor logits = policy->Logits(hidden);
  if (temperature != 1.0) logits = logits / temperature;
  torch::Tensor logp = torch::log_softmax(logits, -1);
  PolicyOutput out;
  out.logprobs = logp.gather(2, b.targets.unsqueeze(-1)).squeeze(-1);
  if (entropy == Entropy::kDifferentiable) {
    out.entropy = -(logp.exp() * logp).sum(-1);
  } else if (entropy == Entropy::kStatistic) {
    torch::NoGradGuard no_grad;
    const torch::Tensor l = logp.detach();
    out.entropy = -(l.exp() * l).sum(-1);
  }
  return out;
}

torch::Tensor RunCritic(model::Llama& critic, const Batch& b) {
  return AtPositions(critic->Values(critic->Trunk(b.tokens, b.attention)), b.positions);
}

}  // namespace rlhf::learner::internal
