#include "services/learner/ppo_trainer.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/checkpoint/hf.h"
#include "common/rl/stats.h"
#include "common/status/status_macros.h"

namespace rlhf::learner {
namespace {

namespace fs = std::filesystem;

// A batch of trajectories as tensors. The hidden state at positions[b, t] predicts targets[b, t],
// the t-th response token of row b.
struct Batch {
  torch::Tensor tokens;        // [B, L] prompt + response, right-padded
  torch::Tensor attention;     // [B, L] 1 = real
  torch::Tensor positions;     // [B, T] int64
  torch::Tensor targets;       // [B, T] int64 (0 at padding)
  torch::Tensor mask;          // [B, T] float, 1 = response token
  torch::Tensor ref_logprobs;  // [B, T]
  torch::Tensor scores;        // [B]
  torch::Tensor contains_eos;  // [B] bool
};

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

Batch MakeBatch(const std::vector<rlhf::v1::Trajectory>& trajectories) {
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
  out.scores = torch::zeros({b}, torch::kFloat);
  out.contains_eos = torch::zeros({b}, torch::kBool);
  auto tokens = out.tokens.accessor<int64_t, 2>();
  auto attention = out.attention.accessor<int64_t, 2>();
  auto positions = out.positions.accessor<int64_t, 2>();
  auto targets = out.targets.accessor<int64_t, 2>();
  auto mask = out.mask.accessor<float, 2>();
  auto ref = out.ref_logprobs.accessor<float, 2>();
  for (int64_t i = 0; i < b; ++i) {
    const auto& t = trajectories[i];
    const int64_t p = t.prompt_tokens_size();
    for (int64_t j = 0; j < p; ++j) tokens[i][j] = t.prompt_tokens(j);
    for (int64_t j = 0; j < t.response_tokens_size(); ++j) {
      tokens[i][p + j] = t.response_tokens(j);
      positions[i][j] = p - 1 + j;
      targets[i][j] = t.response_tokens(j);
      mask[i][j] = 1.0f;
      ref[i][j] = t.ref_logprobs(j);
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
  s.scores = b.scores.index_select(0, idx);
  s.contains_eos = b.contains_eos.index_select(0, idx);
  return s;
}

// Rows of `per_row` [B, L, ...] at positions [B, T].
torch::Tensor AtPositions(const torch::Tensor& per_row, const torch::Tensor& positions) {
  if (per_row.dim() == 2) return per_row.gather(1, positions);
  return per_row.gather(
      1, positions.unsqueeze(-1).expand({positions.size(0), positions.size(1), per_row.size(2)}));
}

struct PolicyOutput {
  torch::Tensor logprobs;  // [B, T]
  torch::Tensor entropy;   // [B, T]; undefined unless asked for
};

enum class Entropy { kNone, kStatistic, kDifferentiable };

// The policy's log-probs of the target tokens; the entropy of each position's distribution as
// asked: none, detached (a statistic: no autograd graph over the vocabulary), or in the graph
// (for the entropy bonus).
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

double Item(const torch::Tensor& t) { return t.item<double>(); }

std::vector<torch::Tensor> Parameters(const model::Llama& m) {
  return m->parameters(/*recurse=*/true);
}

absl::Status CopyParameters(const model::Llama& from, model::Llama& to, const std::string& what) {
  torch::NoGradGuard no_grad;
  auto src = from->named_parameters();
  auto dst = to->named_parameters();
  if (src.size() != dst.size()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": parameter count differs"));
  }
  for (auto& p : dst) {
    const torch::Tensor* s = src.find(p.key());
    if (s == nullptr || !s->sizes().equals(p.value().sizes())) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": parameter '", p.key(), "' differs"));
    }
    p.value().copy_(*s);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Validate(const PpoTrainerOptions& o) {
  RLHF_RETURN_IF_ERROR(rl::Validate(o.step));
  RLHF_RETURN_IF_ERROR(rl::Validate(o.kl));
  if (o.minibatch_size <= 0) return absl::InvalidArgumentError("minibatch_size must be > 0");
  if (o.epochs <= 0) return absl::InvalidArgumentError("epochs must be > 0");
  if (!(o.learning_rate > 0) || !(o.critic_learning_rate > 0)) {
    return absl::InvalidArgumentError("learning rates must be > 0");
  }
  if (!(o.max_grad_norm >= 0)) return absl::InvalidArgumentError("max_grad_norm must be >= 0");
  if (!(o.entropy_coef >= 0)) return absl::InvalidArgumentError("entropy_coef must be >= 0");
  if (!(o.temperature > 0)) return absl::InvalidArgumentError("temperature must be > 0");
  return absl::OkStatus();
}

PpoTrainerOptions PpoTrainerOptionsFromConfig(const rlhf::v1::PpoConfig& ppo,
                                              const rlhf::v1::SamplingConfig& sampling) {
  PpoTrainerOptions o;
  o.step.eos_penalty.penalty = ppo.missing_eos_penalty();
  o.step.gae.gamma = ppo.gamma();
  o.step.gae.lambda = ppo.lam();
  o.step.policy.clip_low = ppo.clip_range();
  o.step.policy.clip_high = ppo.clip_range();
  if (ppo.value_clip() > 0) {
    o.step.value.clip = ppo.value_clip();
  } else {
    o.step.value.clip.reset();
  }
  o.step.vf_coef = ppo.vf_coef();
  o.whiten_advantages = ppo.whiten_advantages();
  o.kl.init_kl_coef = ppo.init_kl_coef();
  if (ppo.kl_target() > 0) {
    o.kl.target = ppo.kl_target();
  } else {
    o.kl.target.reset();
  }
  o.kl.horizon = ppo.kl_horizon();
  o.minibatch_size = ppo.minibatch_size();
  o.epochs = ppo.epochs();
  o.learning_rate = ppo.learning_rate();
  o.critic_learning_rate = ppo.critic_learning_rate();
  o.max_grad_norm = ppo.max_grad_norm();
  o.entropy_coef = ppo.entropy_coef();
  // Greedy sampling has no temperature; its log-probs are taken at 1.
  o.temperature = sampling.temperature() > 0 ? sampling.temperature() : 1.0;
  o.seed = ppo.seed();
  return o;
}

absl::StatusOr<model::Llama> PpoTrainer::CriticFromPolicy(const model::Llama& policy) {
  model::LlamaConfig c = policy->config();
  c.lm_head = false;
  c.tie_embeddings = false;
  c.scalar_head = true;
  RLHF_ASSIGN_OR_RETURN(model::Llama critic, model::CreateRandomLlama(c, /*seed=*/0));
  torch::NoGradGuard no_grad;
  auto src = policy->named_parameters();
  for (auto& p : critic->named_parameters()) {
    if (p.key().rfind("score.", 0) == 0) {
      p.value().zero_();
      continue;
    }
    const torch::Tensor* s = src.find(p.key());
    if (s == nullptr) return absl::InternalError(absl::StrCat("policy has no '", p.key(), "'"));
    p.value().copy_(*s);
  }
  return critic;
}

absl::StatusOr<std::unique_ptr<PpoTrainer>> PpoTrainer::Create(model::Llama policy,
                                                               model::Llama critic,
                                                               const PpoTrainerOptions& options) {
  RLHF_RETURN_IF_ERROR(Validate(options));
  if (!policy || !policy->config().lm_head) {
    return absl::InvalidArgumentError("the policy needs an LM head");
  }
  if (!critic || !critic->config().scalar_head) {
    return absl::InvalidArgumentError("the critic needs a scalar head");
  }
  if (critic->config().vocab_size != policy->config().vocab_size ||
      critic->config().max_seq_len < policy->config().max_seq_len) {
    return absl::InvalidArgumentError("policy and critic differ in vocabulary or context");
  }
  RLHF_ASSIGN_OR_RETURN(rl::KlController kl, rl::KlController::Create(options.kl));
  return std::unique_ptr<PpoTrainer>(
      new PpoTrainer(std::move(policy), std::move(critic), options, kl));
}

PpoTrainer::PpoTrainer(model::Llama policy, model::Llama critic, const PpoTrainerOptions& options,
                       rl::KlController kl)
    : options_(options),
      policy_(std::move(policy)),
      critic_(std::move(critic)),
      kl_(kl),
      rng_(options.seed) {
  policy_->train();
  critic_->train();
  policy_optimizer_ = std::make_unique<torch::optim::Adam>(
      Parameters(policy_), torch::optim::AdamOptions(options.learning_rate));
  critic_optimizer_ = std::make_unique<torch::optim::Adam>(
      Parameters(critic_), torch::optim::AdamOptions(options.critic_learning_rate));
}

absl::StatusOr<PpoStepStats> PpoTrainer::Step(const std::vector<rlhf::v1::Trajectory>& batch) {
  if (batch.empty()) return absl::InvalidArgumentError("empty batch");
  int64_t tokens = 0;
  for (const auto& t : batch) {
    RLHF_RETURN_IF_ERROR(CheckTrajectory(t, policy_->config()));
    tokens += t.response_tokens_size();
  }
  if (tokens < 2) return absl::InvalidArgumentError("a batch needs at least 2 response tokens");
  try {
    return StepImpl(batch);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("PPO step failed: ", e.what()));
  }
}

absl::StatusOr<PpoStepStats> PpoTrainer::StepImpl(const std::vector<rlhf::v1::Trajectory>& batch) {
  const absl::Time start = absl::Now();
  const Batch all = MakeBatch(batch);
  const int64_t n = static_cast<int64_t>(batch.size());

  // 1-2. Old log-probs and values, then the targets.
  rl::RolloutBatch rollout;
  {
    torch::NoGradGuard no_grad;
    rollout.logprobs =
        RunPolicy(policy_, all, options_.temperature, Entropy::kNone).logprobs * all.mask;
    rollout.values = RunCritic(critic_, all) * all.mask;
  }
  rollout.scores = all.scores;
  rollout.contains_eos = all.contains_eos;
  rollout.ref_logprobs = all.ref_logprobs;
  rollout.mask = all.mask;
  const double kl_coef = kl_.value();
  rl::PpoTargets targets = rl::ComputePpoTargets(rollout, kl_coef, options_.step);
  if (!options_.whiten_advantages) targets.advantages_whitened = targets.advantages;

  // 3. Epochs of shuffled minibatches.
  PpoStepStats stats;
  int64_t updates = 0;
  std::vector<int64_t> order(n);
  for (int epoch = 0; epoch < options_.epochs; ++epoch) {
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng_);
    for (int64_t begin = 0; begin < n; begin += options_.minibatch_size) {
      const int64_t end = std::min<int64_t>(n, begin + options_.minibatch_size);
      torch::Tensor idx = torch::tensor(
          std::vector<int64_t>(order.begin() + begin, order.begin() + end), torch::kLong);
      const Batch mb = Select(all, idx);
      if (mb.mask.sum().item<double>() < 1) continue;
      rl::PpoTargets mb_targets;
      mb_targets.advantages_whitened = targets.advantages_whitened.index_select(0, idx);
      mb_targets.returns = targets.returns.index_select(0, idx);

      PolicyOutput out =
          RunPolicy(policy_, mb, options_.temperature,
                    options_.entropy_coef > 0 ? Entropy::kDifferentiable : Entropy::kStatistic);
      torch::Tensor values = RunCritic(critic_, mb);
      rl::PpoLossResult loss = rl::ComputePpoLoss(
          out.logprobs, values, rollout.logprobs.index_select(0, idx),
          rollout.values.index_select(0, idx), mb_targets, mb.mask, options_.step);
      torch::Tensor entropy = rl::MaskedMean(out.entropy, mb.mask);
      torch::Tensor total = loss.total;
      if (options_.entropy_coef > 0) total = total - options_.entropy_coef * entropy;

      policy_optimizer_->zero_grad();
      critic_optimizer_->zero_grad();
      total.backward();
      const absl::Time optimizer_start = absl::Now();
      if (options_.max_grad_norm > 0) {
        torch::nn::utils::clip_grad_norm_(Parameters(policy_), options_.max_grad_norm);
        torch::nn::utils::clip_grad_norm_(Parameters(critic_), options_.max_grad_norm);
      }
      policy_optimizer_->step();
      critic_optimizer_->step();
      stats.optimizer_seconds += absl::ToDoubleSeconds(absl::Now() - optimizer_start);

      stats.policy_loss += Item(loss.policy.loss);
      stats.value_loss += Item(loss.value.loss);
      stats.clipfrac += Item(loss.policy.clipfrac);
      stats.value_clipfrac += Item(loss.value.clipfrac);
      stats.approx_kl += Item(loss.policy.approx_kl);
      stats.entropy += Item(entropy);
      ++updates;
    }
  }
  if (updates > 0) {
    for (double* v : {&stats.policy_loss, &stats.value_loss, &stats.clipfrac, &stats.value_clipfrac,
                      &stats.approx_kl, &stats.entropy}) {
      *v /= static_cast<double>(updates);
    }
  }

  // 4. KL controller and the batch's statistics.
  const double kl_obs = Item(targets.kl_obs);
  kl_.Update(kl_obs, n);
  ++step_;
  {
    torch::NoGradGuard no_grad;
    const torch::Tensor var_returns = rl::MaskedVar(targets.returns, all.mask);
    const torch::Tensor var_resid = rl::MaskedVar(targets.returns - rollout.values, all.mask);
    const double vr = Item(var_returns);
    stats.explained_variance = vr > 0 ? 1.0 - Item(var_resid) / vr : 0.0;
  }
  stats.step = step_;
  stats.trajectories = n;
  stats.tokens = static_cast<int64_t>(Item(all.mask.sum()));
  stats.score_mean = Item(all.scores.mean());
  stats.kl_mean = kl_obs;
  stats.kl_coef = kl_coef;
  stats.response_length_mean = static_cast<double>(stats.tokens) / static_cast<double>(n);
  stats.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  return stats;
}

std::vector<std::pair<std::string, torch::Tensor>> PpoTrainer::PolicyParameters() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : policy_->named_parameters()) {
    out.emplace_back(p.key(), p.value().detach().clone());
  }
  return out;
}

absl::Status PpoTrainer::Save(const std::string& dir) const {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  RLHF_RETURN_IF_ERROR(checkpoint::SaveHfLlama(policy_, dir + "/policy", torch::kFloat32));
  RLHF_RETURN_IF_ERROR(checkpoint::SaveHfLlama(critic_, dir + "/critic", torch::kFloat32));
  try {
    torch::serialize::OutputArchive policy_archive, critic_archive;
    policy_optimizer_->save(policy_archive);
    critic_optimizer_->save(critic_archive);
    torch::serialize::OutputArchive archive;
    archive.write("policy", policy_archive);
    archive.write("critic", critic_archive);
    archive.save_to(dir + "/optimizer.pt");
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("saving ", dir, "/optimizer.pt: ", e.what()));
  }
  std::ostringstream rng;
  rng << rng_;
  nlohmann::json j = {{"step", step_}, {"kl_coef", kl_.value()}, {"shuffle_rng", rng.str()}};
  std::ofstream out(dir + "/trainer.json");
  out << j.dump(2) << "\n";
  if (!out.good()) return absl::InternalError(absl::StrCat("cannot write ", dir, "/trainer.json"));
  return absl::OkStatus();
}

absl::Status PpoTrainer::Restore(const std::string& dir) {
  std::ifstream in(dir + "/trainer.json");
  if (!in) return absl::NotFoundError(absl::StrCat("no ", dir, "/trainer.json"));
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("step") || !j["step"].is_number() ||
      !j.contains("kl_coef") || !j["kl_coef"].is_number() || !j.contains("shuffle_rng") ||
      !j["shuffle_rng"].is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(dir, "/trainer.json is malformed"));
  }
  RLHF_ASSIGN_OR_RETURN(model::Llama policy, checkpoint::LoadHfLlama(dir + "/policy"));
  RLHF_ASSIGN_OR_RETURN(model::Llama critic, checkpoint::LoadHfLlama(dir + "/critic"));
  RLHF_RETURN_IF_ERROR(CopyParameters(policy, policy_, dir + "/policy"));
  RLHF_RETURN_IF_ERROR(CopyParameters(critic, critic_, dir + "/critic"));
  try {
    torch::serialize::InputArchive archive, policy_archive, critic_archive;
    archive.load_from(dir + "/optimizer.pt");
    archive.read("policy", policy_archive);
    archive.read("critic", critic_archive);
    policy_optimizer_->load(policy_archive);
    critic_optimizer_->load(critic_archive);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("loading ", dir, "/optimizer.pt: ", e.what()));
  }
  rl::KlControllerOptions kl_options = options_.kl;
  kl_options.init_kl_coef = j["kl_coef"].get<double>();
  RLHF_ASSIGN_OR_RETURN(kl_, rl::KlController::Create(kl_options));
  std::istringstream rng(j["shuffle_rng"].get<std::string>());
  rng >> rng_;
  step_ = j["step"].get<int64_t>();
  return absl::OkStatus();
}

}  // namespace rlhf::learner
