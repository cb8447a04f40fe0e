#include "bench/ppo_iteration_in_process.h"

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/checkpoint/checkpoint.h"
#include "common/config/config.h"
#include "common/model/generation.h"
#include "common/model/scoring.h"
#include "common/status/status_macros.h"
#include "common/tokenizer/tokenizer.h"
#include "rlhf/v1/config.pb.h"
#include "services/reward/scorers.h"
#include "services/rollout/policy_holder.h"
#include "services/rollout/rollout_service.h"
#include "services/rollout/trajectories.h"

namespace rlhf::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

class Loop final : public InProcessLoop {
 public:
  Loop(int batch_prompts, int leases_per_step)
      : batch_prompts_(batch_prompts), leases_per_step_(leases_per_step) {}
  absl::Status Init(const std::string& learner_config_path, const std::string& reward_config_path);
  absl::StatusOr<learner::PpoStepStats> Iteration() override;
  std::map<std::string, double>& stage_seconds() override { return seconds_; }

 private:
  rlhf::v1::PromptLease NextLease();
  absl::Status RunLease(std::vector<rlhf::v1::Trajectory>* batch);

  const int batch_prompts_;
  const int leases_per_step_;
  rlhf::v1::LearnerConfig config_;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer_;
  std::unique_ptr<learner::PpoTrainer> trainer_;
  model::Llama reference_{nullptr};                // the reference service's frozen copy
  std::shared_ptr<rollout::PolicyHolder> policy_;  // the worker's engine
  std::unique_ptr<reward::Scorer> scorer_;
  std::vector<rlhf::v1::Prompt> prompts_;
  int64_t leases_ = 0;
  uint64_t next_seq_ = 0;
  std::map<std::string, double> seconds_;
};

absl::Status Loop::Init(const std::string& learner_config_path,
                        const std::string& reward_config_path) {
  RLHF_RETURN_IF_ERROR(config::LoadConfig(learner_config_path, {}, &config_));
  rlhf::v1::RewardConfig reward;
  RLHF_RETURN_IF_ERROR(config::LoadConfig(reward_config_path, {}, &reward));
  RLHF_ASSIGN_OR_RETURN(tokenizer_, tokenizer::LoadTokenizer(config_.tokenizer()));
  RLHF_ASSIGN_OR_RETURN(model::Llama policy, checkpoint::LoadModel(config_.policy()));
  RLHF_ASSIGN_OR_RETURN(model::Llama critic, learner::PpoTrainer::CriticFromPolicy(policy));
  RLHF_ASSIGN_OR_RETURN(
      trainer_,
      learner::PpoTrainer::Create(
          policy, critic, learner::PpoTrainerOptionsFromConfig(config_.ppo(), config_.sampling())));
  RLHF_ASSIGN_OR_RETURN(reference_, checkpoint::LoadModel(config_.policy()));
  RLHF_ASSIGN_OR_RETURN(model::Llama worker_model, checkpoint::LoadModel(config_.policy()));
  RLHF_ASSIGN_OR_RETURN(policy_, rollout::PolicyHolder::Create(worker_model, -1));
  RLHF_ASSIGN_OR_RETURN(scorer_,
                        reward::CreateRuleScorer({reward.rules().begin(), reward.rules().end()}));
  std::ifstream in(config_.prompts());
  for (std::string line; std::getline(in, line);) {  // tokenized as the learner's prompt pool
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains("prompt")) continue;
    rlhf::v1::Prompt& prompt = prompts_.emplace_back();
    prompt.set_index(static_cast<int64_t>(prompts_.size() - 1));
    prompt.set_text(j["prompt"].get<std::string>());
    prompt.add_tokens(tokenizer_->bos_id());
    for (int id : tokenizer_->Encode(prompt.text())) prompt.add_tokens(id);
  }
  if (prompts_.empty()) return absl::InvalidArgumentError(config_.prompts() + ": no prompts");
  // The worker's first sync: the learner's version 0.
  return policy_->Install(trainer_->PolicyParameters(), 0);
}

rlhf::v1::PromptLease Loop::NextLease() {
  rlhf::v1::PromptLease lease;
  lease.set_lease_id(absl::StrCat("lease-", leases_));
  for (int i = 0; i < batch_prompts_; ++i) {
    *lease.add_prompts() = prompts_[(leases_ * batch_prompts_ + i) % prompts_.size()];
  }
  const rlhf::v1::SamplingConfig& c = config_.sampling();
  rlhf::v1::SamplingParams* s = lease.mutable_sampling();
  s->set_temperature(static_cast<float>(c.temperature()));
  s->set_top_k(c.top_k());
  s->set_top_p(static_cast<float>(c.top_p()));
  s->set_max_new_tokens(c.max_new_tokens());
  s->set_seed(config_.seed() * 0x9E3779B97F4A7C15ULL + (static_cast<uint64_t>(leases_++) << 16));
  return lease;
}

absl::Status Loop::RunLease(std::vector<rlhf::v1::Trajectory>* batch) {
  const rlhf::v1::PromptLease lease = NextLease();
  Clock::time_point t = Clock::now();
  const rollout::PolicyHolder::Policy policy = policy_->Snapshot();
  RLHF_ASSIGN_OR_RETURN(auto prompts, rollout::LeasePromptTokens(lease, tokenizer_.get()));
  const model::SamplingOptions sampling = rollout::SamplingOptionsFromProto(lease.sampling());
  std::vector<uint64_t> seeds;
  for (size_t i = 0; i < prompts.size(); ++i) seeds.push_back(sampling.seed + i);
  RLHF_ASSIGN_OR_RETURN(auto results, policy.engine->Generate(prompts, sampling, seeds));
  std::vector<rlhf::v1::Trajectory> trajectories =
      rollout::BuildTrajectories(lease, prompts, results, policy.version, "in-process", &next_seq_);
  seconds_["generate"] += Seconds(t);

  t = Clock::now();
  const rlhf::v1::LogProbsRequest ref_request =
      rollout::MakeLogProbsRequest(trajectories, lease.sampling().temperature());
  std::vector<std::vector<int64_t>> sequences;
  for (const auto& seq : ref_request.sequences()) {
    sequences.emplace_back(seq.tokens().begin(), seq.tokens().end());
  }
  RLHF_ASSIGN_OR_RETURN(
      auto scored, model::ScoreTokenLogProbs(reference_, sequences, ref_request.temperature()));
  rlhf::v1::LogProbsResponse ref;
  for (int i = 0; i < ref_request.sequences_size(); ++i) {
    const int start = ref_request.sequences(i).start();
    ref.add_results()->mutable_logprobs()->Add(scored[i].begin() + (start - 1), scored[i].end());
  }
  seconds_["reference"] += Seconds(t);

  t = Clock::now();
  const rlhf::v1::ScoreRequest score_request =
      rollout::MakeScoreRequest(lease, trajectories, tokenizer_.get());
  std::vector<reward::ScoreInput> inputs;
  for (const auto& it : score_request.items()) {
    inputs.push_back({{it.prompt_tokens().begin(), it.prompt_tokens().end()},
                      {it.response_tokens().begin(), it.response_tokens().end()},
                      it.prompt_text(),
                      it.response_text()});
  }
  RLHF_ASSIGN_OR_RETURN(std::vector<float> scores, scorer_->Score(inputs));
  rlhf::v1::ScoreResponse reward;
  reward.mutable_scores()->Add(scores.begin(), scores.end());
  seconds_["reward"] += Seconds(t);
  RLHF_RETURN_IF_ERROR(rollout::AttachScores(ref, reward, &trajectories));
  for (auto& trajectory : trajectories) batch->push_back(std::move(trajectory));
  return absl::OkStatus();
}

absl::StatusOr<learner::PpoStepStats> Loop::Iteration() {
  std::vector<rlhf::v1::Trajectory> batch;
  for (int i = 0; i < leases_per_step_; ++i) RLHF_RETURN_IF_ERROR(RunLease(&batch));
  Clock::time_point t = Clock::now();
  RLHF_ASSIGN_OR_RETURN(learner::PpoStepStats stats, trainer_->Step(batch));
  seconds_["learner_step"] += Seconds(t);
  t = Clock::now();
  RLHF_RETURN_IF_ERROR(policy_->Install(trainer_->PolicyParameters(), trainer_->step()));
  seconds_["weight_swap"] += Seconds(t);
  return stats;
}

}  // namespace

absl::StatusOr<std::unique_ptr<InProcessLoop>> InProcessLoop::Create(
    const std::string& learner_config_path, const std::string& reward_config_path,
    int batch_prompts, int leases_per_step) {
  if (batch_prompts < 1 || leases_per_step < 1) {
    return absl::InvalidArgumentError("batch_prompts and leases_per_step must be >= 1");
  }
  auto loop = std::make_unique<Loop>(batch_prompts, leases_per_step);
  RLHF_RETURN_IF_ERROR(loop->Init(learner_config_path, reward_config_path));
  return loop;
}

}  // namespace rlhf::bench
