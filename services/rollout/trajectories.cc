#include "services/rollout/trajectories.h"

#include "absl/strings/str_cat.h"

namespace rlhf::rollout {
namespace {

std::vector<int> ToInts(const google::protobuf::RepeatedField<int64_t>& ids) {
  return std::vector<int>(ids.begin(), ids.end());
}

}  // namespace

absl::StatusOr<std::vector<std::vector<int64_t>>> LeasePromptTokens(
    const rlhf::v1::PromptLease& lease, const tokenizer::Tokenizer* tokenizer) {
  std::vector<std::vector<int64_t>> prompts;
  for (const rlhf::v1::Prompt& p : lease.prompts()) {
    std::vector<int64_t> tokens(p.tokens().begin(), p.tokens().end());
    if (tokens.empty() && !p.text().empty()) {
      if (tokenizer == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("prompt ", p.index(), " comes as text but this worker has no tokenizer"));
      }
      tokens.push_back(tokenizer->bos_id());
      for (int id : tokenizer->Encode(p.text())) tokens.push_back(id);
    }
    prompts.push_back(std::move(tokens));
  }
  return prompts;
}

std::vector<rlhf::v1::Trajectory> BuildTrajectories(
    const rlhf::v1::PromptLease& lease, const std::vector<std::vector<int64_t>>& prompts,
    const std::vector<model::GenerationResult>& results, int64_t policy_version,
    const std::string& worker_id, uint64_t* next_seq) {
  std::vector<rlhf::v1::Trajectory> out(results.size());
  for (size_t i = 0; i < results.size(); ++i) {
    rlhf::v1::Trajectory& t = out[i];
    t.set_id(absl::StrCat(worker_id, "/", (*next_seq)++));
    t.set_worker_id(worker_id);
    t.set_policy_version(policy_version);
    t.set_lease_id(lease.lease_id());
    t.set_prompt_index(lease.prompts(i).index());
    t.mutable_prompt_tokens()->Add(prompts[i].begin(), prompts[i].end());
    t.mutable_response_tokens()->Add(results[i].tokens.begin(), results[i].tokens.end());
    t.mutable_behaviour_logprobs()->Add(results[i].logprobs.begin(), results[i].logprobs.end());
    t.set_finish_reason(results[i].finish_reason == model::FinishReason::kEos
                            ? rlhf::v1::FINISH_REASON_EOS
                            : rlhf::v1::FINISH_REASON_LENGTH);
  }
  return out;
}

rlhf::v1::LogProbsRequest MakeLogProbsRequest(const std::vector<rlhf::v1::Trajectory>& trajectories,
                                              float temperature) {
  rlhf::v1::LogProbsRequest request;
  request.set_temperature(temperature > 0 ? temperature : 1.0f);
  for (const rlhf::v1::Trajectory& t : trajectories) {
    rlhf::v1::TokenSequence* seq = request.add_sequences();
    seq->mutable_tokens()->Add(t.prompt_tokens().begin(), t.prompt_tokens().end());
    seq->mutable_tokens()->Add(t.response_tokens().begin(), t.response_tokens().end());
    seq->set_start(t.prompt_tokens_size());
  }
  return request;
}

rlhf::v1::ScoreRequest MakeScoreRequest(const rlhf::v1::PromptLease& lease,
                                        const std::vector<rlhf::v1::Trajectory>& trajectories,
                                        const tokenizer::Tokenizer* tokenizer) {
  rlhf::v1::ScoreRequest request;
  for (size_t i = 0; i < trajectories.size(); ++i) {
    const rlhf::v1::Trajectory& t = trajectories[i];
    rlhf::v1::ScoreItem* item = request.add_items();
    *item->mutable_prompt_tokens() = t.prompt_tokens();
    *item->mutable_response_tokens() = t.response_tokens();
    if (tokenizer != nullptr) {
      const std::string& text = lease.prompts(i).text();
      item->set_prompt_text(!text.empty() ? text : tokenizer->Decode(ToInts(t.prompt_tokens())));
      item->set_response_text(tokenizer->Decode(ToInts(t.response_tokens())));
    }
  }
  return request;
}

absl::Status AttachScores(const rlhf::v1::LogProbsResponse& ref,
                          const rlhf::v1::ScoreResponse& reward,
                          std::vector<rlhf::v1::Trajectory>* trajectories) {
  const int n = static_cast<int>(trajectories->size());
  if (ref.results_size() != n || reward.scores_size() != n) {
    return absl::InternalError(absl::StrCat("asked for ", n, " results; the reference returned ",
                                            ref.results_size(), ", the reward service ",
                                            reward.scores_size()));
  }
  for (int i = 0; i < n; ++i) {
    rlhf::v1::Trajectory& t = (*trajectories)[i];
    if (ref.results(i).logprobs_size() != t.response_tokens_size()) {
      return absl::InternalError(absl::StrCat("the reference returned ",
                                              ref.results(i).logprobs_size(), " log-probs for ",
                                              t.response_tokens_size(), " response tokens"));
    }
    *t.mutable_ref_logprobs() = ref.results(i).logprobs();
    t.set_reward(reward.scores(i));
  }
  return absl::OkStatus();
}

}  // namespace rlhf::rollout
