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
#include "common/file/file.h"
#include "common/checkpoint/hf.h"
#include "common/rl/losses.h"
#include "common/rl/stats.h"
#include "common/status/status_macros.h"
#include "common/train/data_parallel.h"
#include "services/learner/ppo_batch.h"
#include "services/learner/ppo_data_parallel.h"
#include "common/status/exception.h"

namespace rlhf::learner {
namespace {

namespace fs = std::filesystem;
using internal::Batch;
using internal::CheckTrajectory;
using internal::Entropy;
using internal::LossSums;
using internal::MakeBatch;
using internal::MinibatchShare;
using internal::PolicyOutput;
using internal::RunCritic;
using internal::RunPolicy;
using internal::Select;

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

rl::DecoupledLossOptions DecoupledOptions(const PpoTrainerOptions& o) {
  rl::DecoupledLossOptions d;
  d.clip_low = o.step.policy.clip_low;
  d.clip_high = o.step.policy.clip_high;
  d.behav_weight_cap = o.behaviour_weight_cap;
  return d;
}

// The checks of Create that need no communication.
absl::Status CheckInputs(const model::Llama& policy, const model::Llama& critic,
                         const PpoTrainerOptions& options) {
  RLHF_RETURN_IF_ERROR(Validate(options));
  if (!policy || !policy->config().lm_head) {
    return absl::InvalidArgumentError("the policy needs an LM head");
  }
  if (options.group_advantage.has_value()) {
    if (!critic.is_empty()) {
      return absl::InvalidArgumentError(
          "critic-free advantages (RLOO, GRPO) take no critic: pass model::Llama{nullptr}");
    }
    return absl::OkStatus();
  }
  if (critic.is_empty() || !critic->config().scalar_head) {
    return absl::InvalidArgumentError("the critic needs a scalar head");
  }
  if (critic->config().vocab_size != policy->config().vocab_size ||
      critic->config().max_seq_len < policy->config().max_seq_len) {
    return absl::InvalidArgumentError("policy and critic differ in vocabulary or context");
  }
  return absl::OkStatus();
}

// With groups of k: consecutive runs of k trajectories of one prompt.
absl::Status CheckGroups(const std::vector<rlhf::v1::Trajectory>& batch, int k) {
  if (batch.size() % k != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("a batch of ", batch.size(), " trajectories is not whole groups of ", k,
                     " (RLOO/GRPO train on every sample of a prompt together)"));
  }
  for (size_t begin = 0; begin < batch.size(); begin += k) {
    const rlhf::v1::Trajectory& first = batch[begin];
    for (size_t i = begin + 1; i < begin + k; ++i) {
      if (batch[i].prompt_index() != first.prompt_index() ||
          !std::equal(batch[i].prompt_tokens().begin(), batch[i].prompt_tokens().end(),
                      first.prompt_tokens().begin(), first.prompt_tokens().end())) {
        return absl::InvalidArgumentError(absl::StrCat(
            "trajectories ", begin, "..", begin + k - 1, " of the batch are not one group of ", k,
            " samples of one prompt: trajectory ", batch[i].id(), " has prompt ",
            batch[i].prompt_index(), ", ", first.id(), " prompt ", first.prompt_index()));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status CheckBatch(const std::vector<rlhf::v1::Trajectory>& batch, const model::LlamaConfig& c,
                        const PpoTrainerOptions& o) {
  if (batch.empty()) return absl::InvalidArgumentError("empty batch");
  if (o.group_advantage.has_value()) RLHF_RETURN_IF_ERROR(CheckGroups(batch, o.group_size));
  int64_t tokens = 0;
  for (const auto& t : batch) {
    RLHF_RETURN_IF_ERROR(CheckTrajectory(t, c));
    tokens += t.response_tokens_size();
  }
  if (tokens < 2) return absl::InvalidArgumentError("a batch needs at least 2 response tokens");
  return absl::OkStatus();
}

// The whole batch, and what steps 1 and 2 computed from it.
struct StepData {
  Batch all;
  rl::RolloutBatch rollout;
  rl::PpoTargets targets;
};

// Step 1 for rows [begin, end) of d->all: the policy's log-probs and the critic's values, without
// gradients, in [B, T] tensors that are zero in the other rows.
void RunRollout(model::Llama& policy, model::Llama& critic, double temperature, int64_t begin,
                int64_t end, StepData* d) {
  torch::NoGradGuard no_grad;
  const Batch& all = d->all;
  const bool has_critic = !critic.is_empty();   // critic-free: values are 0
  if (begin == 0 && end == all.mask.size(0)) {  // the whole batch
    d->rollout.logprobs = RunPolicy(policy, all, temperature, Entropy::kNone).logprobs * all.mask;
    d->rollout.values =
        has_critic ? RunCritic(critic, all) * all.mask : torch::zeros_like(d->rollout.logprobs);
    return;
  }
  // The dtypes the whole batch would give (the same on every rank, whatever its share).
  const auto dtype = [&](const model::Llama& m) {
    return all.mask.options().dtype(
        torch::promote_types(m->parameters().front().scalar_type(), all.mask.scalar_type()));
  };
  d->rollout.logprobs = torch::zeros(all.mask.sizes(), dtype(policy));
  d->rollout.values = torch::zeros(all.mask.sizes(), dtype(has_critic ? critic : policy));
  if (end == begin) return;
  const Batch mine = Select(all, torch::arange(begin, end, torch::kLong));
  d->rollout.logprobs.narrow(0, begin, end - begin)
      .copy_(RunPolicy(policy, mine, temperature, Entropy::kNone).logprobs * mine.mask);
  if (has_critic) {
    d->rollout.values.narrow(0, begin, end - begin).copy_(RunCritic(critic, mine) * mine.mask);
  }
}

// Step 2, on the whole batch.
void ComputeTargets(const PpoTrainerOptions& o, double kl_coef, StepData* d) {
  Batch& all = d->all;
  rl::RolloutBatch& rollout = d->rollout;
  // On-policy rows are their own behaviour: weight exactly 1.
  all.behav_logprobs =
      torch::where(all.stale.unsqueeze(1), all.behav_logprobs, rollout.logprobs) * all.mask;
  rollout.scores = all.scores;
  rollout.contains_eos = all.contains_eos;
  rollout.ref_logprobs = all.ref_logprobs;
  rollout.mask = all.mask;
  if (o.group_advantage.has_value()) {  // RLOO, GRPO: not whitened (see ppo_step.h)
    d->targets =
        rl::ComputeGroupPpoTargets(rollout, kl_coef, o.group_size, *o.group_advantage, o.step);
    return;
  }
  d->targets = rl::ComputePpoTargets(rollout, kl_coef, o.step);
  if (!o.whiten_advantages) d->targets.advantages_whitened = d->targets.advantages;
}

// Forward and backward of `rows`, this rank's share of a minibatch: each loss term is scaled by
// world * (its share), so that the ranks' gradients add up to world * (the gradient of the whole
// minibatch's loss) and GradientSync's mean is that gradient. Adds the share-weighted
// statistics to `sums`. A single process has world 1 and shares 1: the plain minibatch loss.
void MinibatchBackward(model::Llama& policy, model::Llama& critic, const PpoTrainerOptions& o,
                       const std::vector<int64_t>& rows, const MinibatchShare& share,
                       const StepData& d, LossSums* sums) {
  torch::Tensor idx = torch::tensor(rows, torch::kLong);
  const Batch mb = Select(d.all, idx);
  rl::PpoTargets mb_targets;
  mb_targets.advantages_whitened = d.targets.advantages_whitened.index_select(0, idx);
  mb_targets.returns = d.targets.returns.index_select(0, idx);
  PolicyOutput out = RunPolicy(policy, mb, o.temperature,
                               o.entropy_coef > 0 ? Entropy::kDifferentiable : Entropy::kStatistic);
  const bool has_critic = !critic.is_empty();
  // Critic-free: the value loss is 0 and takes no part in the total.
  torch::Tensor values =
      has_critic ? RunCritic(critic, mb) : torch::zeros_like(out.logprobs.detach());
  const torch::Tensor old_logprobs = d.rollout.logprobs.index_select(0, idx);
  rl::PpoLossResult loss =
      rl::ComputePpoLoss(out.logprobs, values, old_logprobs, d.rollout.values.index_select(0, idx),
                         mb_targets, mb.mask, o.step);
  torch::Tensor entropy = rl::MaskedMean(out.entropy, mb.mask);
  torch::Tensor policy_loss = loss.policy.loss;
  double policy_share = share.Of(o.step.policy.aggregation);
  if (o.decoupled) {
    rl::DecoupledLossResult dec =
        rl::DecoupledPpoLoss(out.logprobs, old_logprobs, mb.behav_logprobs,
                             mb_targets.advantages_whitened, mb.mask, DecoupledOptions(o));
    policy_loss = dec.loss;
    policy_share = share.tokens;
    sums->behaviour_weight += Item((dec.behav_weights * mb.mask).sum());
    sums->behaviour_tokens += Item(mb.mask.sum());
  }
  const double value_share = share.Of(o.step.value.aggregation);
  const double world = train::WorldSize(o.process_group);
  torch::Tensor total = policy_loss * (world * policy_share);
  if (has_critic) total = total + loss.value.loss * (o.step.vf_coef * world * value_share);
  if (o.entropy_coef > 0) total = total - (o.entropy_coef * world * share.tokens) * entropy;
  total.backward();

  sums->policy_loss += Item(policy_loss) * policy_share;
  sums->value_loss += Item(loss.value.loss) * value_share;
  sums->clipfrac += Item(loss.policy.clipfrac) * share.tokens;
  sums->value_clipfrac += Item(loss.value.clipfrac) * share.tokens;
  sums->approx_kl += Item(loss.policy.approx_kl) * share.tokens;
  sums->entropy += Item(entropy) * share.tokens;
}

// The means over the step's `updates` minibatches.
void FillLossStats(const LossSums& sums, int64_t updates, PpoStepStats* stats) {
  if (sums.behaviour_tokens > 0) {
    stats->behaviour_weight_mean = sums.behaviour_weight / sums.behaviour_tokens;
  }
  if (updates == 0) return;
  const double u = static_cast<double>(updates);
  stats->policy_loss = sums.policy_loss / u;
  stats->value_loss = sums.value_loss / u;
  stats->clipfrac = sums.clipfrac / u;
  stats->value_clipfrac = sums.value_clipfrac / u;
  stats->approx_kl = sums.approx_kl / u;
  stats->entropy = sums.entropy / u;
}

// The statistics of the whole batch and its targets.
void FillBatchStats(const StepData& d, PpoStepStats* stats) {
  torch::NoGradGuard no_grad;
  const torch::Tensor var_returns = rl::MaskedVar(d.targets.returns, d.all.mask);
  const torch::Tensor var_resid = rl::MaskedVar(d.targets.returns - d.rollout.values, d.all.mask);
  const double vr = Item(var_returns);
  stats->explained_variance = vr > 0 ? 1.0 - Item(var_resid) / vr : 0.0;
  const int64_t n = d.all.mask.size(0);
  stats->trajectories = n;
  stats->tokens = static_cast<int64_t>(Item(d.all.mask.sum()));
  stats->score_mean = Item(d.all.scores.mean());
  stats->response_length_mean = static_cast<double>(stats->tokens) / static_cast<double>(n);
  stats->stale_trajectories = d.all.stale.sum().item<int64_t>();
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
  if (o.decoupled) RLHF_RETURN_IF_ERROR(rl::Validate(DecoupledOptions(o)));
  if (o.grad_bucket_bytes <= 0) return absl::InvalidArgumentError("grad_bucket_bytes must be > 0");
  if (o.group_advantage.has_value()) {
    RLHF_RETURN_IF_ERROR(rl::Validate(*o.group_advantage));
    if (o.group_size < 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "critic-free advantages need group_size >= 2 samples per prompt, got ", o.group_size));
    }
  } else if (o.group_size != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("group_size is ", o.group_size, " without critic-free advantages"));
  }
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
  o.decoupled = ppo.decoupled();
  if (ppo.behaviour_weight_cap() > 0) {
    o.behaviour_weight_cap = ppo.behaviour_weight_cap();
  } else {
    o.behaviour_weight_cap.reset();
  }
  if (ppo.advantage() == rlhf::v1::PpoConfig::RLOO ||
      ppo.advantage() == rlhf::v1::PpoConfig::GRPO) {
    rl::GroupAdvantageOptions g;
    g.baseline = ppo.advantage() == rlhf::v1::PpoConfig::RLOO ? rl::GroupBaseline::kLeaveOneOut
                                                              : rl::GroupBaseline::kMeanStd;
    o.group_advantage = g;
    o.group_size = ppo.group_size();
  }
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
  dist::ProcessGroup* group = options.process_group;
  RLHF_RETURN_IF_ERROR(train::AgreeOnStatus(group, CheckInputs(policy, critic, options)));
  RLHF_ASSIGN_OR_RETURN(rl::KlController kl, rl::KlController::Create(options.kl));
  const int64_t fingerprint = internal::TrainerFingerprint(options, policy, critic);
  std::unique_ptr<PpoTrainer> trainer(
      new PpoTrainer(std::move(policy), std::move(critic), options, kl));
  RLHF_RETURN_IF_ERROR(train::JoinDataParallel(group, fingerprint, trainer->policy_));
  if (!trainer->critic_.is_empty()) {
    RLHF_RETURN_IF_ERROR(train::JoinDataParallel(group, fingerprint, trainer->critic_));
  }
  return trainer;
}

PpoTrainer::PpoTrainer(model::Llama policy, model::Llama critic, const PpoTrainerOptions& options,
                       rl::KlController kl)
    : options_(options),
      policy_(std::move(policy)),
      critic_(std::move(critic)),
      kl_(kl),
      rng_(options.seed) {
  policy_->train();
  policy_optimizer_ = std::make_unique<torch::optim::Adam>(
      Parameters(policy_), torch::optim::AdamOptions(options.learning_rate));
  if (!critic_.is_empty()) {
    critic_->train();
    critic_optimizer_ = std::make_unique<torch::optim::Adam>(
        Parameters(critic_), torch::optim::AdamOptions(options.critic_learning_rate));
  }
  if (train::WorldSize(options.process_group) > 1) {
    std::vector<torch::Tensor> parameters = Parameters(policy_);
    if (!critic_.is_empty()) {
      for (const torch::Tensor& p : Parameters(critic_)) parameters.push_back(p);
    }
    sync_ = std::make_unique<dist::GradientSync>(options.process_group, std::move(parameters),
                                                 options.grad_bucket_bytes);
  }
}

bool PpoTrainer::is_main() const { return train::IsMain(options_.process_group); }

int64_t PpoTrainer::StateFingerprint() const {
  return internal::StateFingerprint(step_, kl_.value(), rng_);
}

absl::StatusOr<PpoStepStats> PpoTrainer::Step(const std::vector<rlhf::v1::Trajectory>& batch) {
  const absl::Time start = absl::Now();
  internal::StepComm comm(options_.process_group);
  RLHF_RETURN_IF_ERROR(comm.Agree(CheckBatch(batch, policy_->config(), options_)));
  RLHF_RETURN_IF_ERROR(comm.CheckSame(
      comm.sharded() ? internal::BatchFingerprint(batch, StateFingerprint()) : 0,
      "the PPO batch or trainer state (every rank must step on the same trajectories)"));
  absl::StatusOr<PpoStepStats> stats;
  try {
    stats = StepImpl(batch, comm);
  } catch (...) {
    return status::CurrentExceptionToStatus("PPO step failed");
  }
  if (stats.ok()) {
    stats->allreduce_seconds = comm.seconds();
    stats->seconds = absl::ToDoubleSeconds(absl::Now() - start);
  }
  return stats;
}

// Local work that may throw runs under internal::Guarded and its status is agreed on at the next
// collective (comm.Agree), so that an error on one rank ends the step on all of them.
absl::StatusOr<PpoStepStats> PpoTrainer::StepImpl(const std::vector<rlhf::v1::Trajectory>& batch,
                                                  internal::StepComm& comm) {
  dist::ProcessGroup* group = comm.sharded() ? options_.process_group : nullptr;
  const int64_t n = static_cast<int64_t>(batch.size());

  // 1-2. Old log-probs and values (this rank's rows, then gathered), then the targets.
  StepData d;
  const std::pair<int64_t, int64_t> my_rows = train::RankSlice(n, group);
  RLHF_RETURN_IF_ERROR(comm.Agree(internal::Guarded([&] {
    d.all = MakeBatch(batch, step_);
    RunRollout(policy_, critic_, options_.temperature, my_rows.first, my_rows.second, &d);
  })));
  // The rows are disjoint (zero elsewhere): the sum is a gather.
  RLHF_RETURN_IF_ERROR(comm.AllReduceSum({d.rollout.logprobs, d.rollout.values}));
  const double kl_coef = kl_.value();
  absl::Status local = internal::Guarded([&] { ComputeTargets(options_, kl_coef, &d); });

  // 3. Epochs of shuffled minibatches, each split between the ranks.
  PpoStepStats stats;
  LossSums sums;
  int64_t updates = 0;
  std::vector<int64_t> order(n);
  for (int epoch = 0; epoch < options_.epochs; ++epoch) {
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng_);
    for (int64_t begin = 0; begin < n; begin += options_.minibatch_size) {
      const int64_t end = std::min<int64_t>(n, begin + options_.minibatch_size);
      const auto [share_begin, share_end] = train::RankSlice(end - begin, group);
      // Token counts from the trajectories: every rank knows the whole minibatch's.
      int64_t tokens = 0, share_tokens = 0;
      for (int64_t k = begin; k < end; ++k) {
        const int64_t t = batch[order[k]].response_tokens_size();
        tokens += t;
        if (k - begin >= share_begin && k - begin < share_end) share_tokens += t;
      }
      if (tokens < 1) continue;
      MinibatchShare share;
      share.tokens = static_cast<double>(share_tokens) / static_cast<double>(tokens);
      share.rows = static_cast<double>(share_end - share_begin) / static_cast<double>(end - begin);
      const std::vector<int64_t> rows(order.begin() + begin + share_begin,
                                      order.begin() + begin + share_end);
      if (local.ok()) {
        local = internal::Guarded([&] {
          policy_optimizer_->zero_grad();
          if (critic_optimizer_) critic_optimizer_->zero_grad();
          if (!rows.empty()) MinibatchBackward(policy_, critic_, options_, rows, share, d, &sums);
        });
      }
      RLHF_RETURN_IF_ERROR(comm.Agree(local));
      if (sync_ != nullptr) RLHF_RETURN_IF_ERROR(comm.Sync(*sync_));
      local = internal::Guarded([&] {
        const absl::Time optimizer_start = absl::Now();
        if (options_.max_grad_norm > 0) {
          torch::nn::utils::clip_grad_norm_(Parameters(policy_), options_.max_grad_norm);
          if (critic_optimizer_) {
            torch::nn::utils::clip_grad_norm_(Parameters(critic_), options_.max_grad_norm);
          }
        }
        policy_optimizer_->step();
        if (critic_optimizer_) critic_optimizer_->step();
        stats.optimizer_seconds += absl::ToDoubleSeconds(absl::Now() - optimizer_start);
      });
      ++updates;
    }
  }
  RLHF_RETURN_IF_ERROR(comm.Agree(local));
  RLHF_RETURN_IF_ERROR(comm.AllReduceSum(&sums));
  FillLossStats(sums, updates, &stats);

  // 4. KL controller and the batch's statistics.
  const double kl_obs = Item(d.targets.kl_obs);
  kl_.Update(kl_obs, n);
  ++step_;
  FillBatchStats(d, &stats);
  stats.step = step_;
  stats.kl_mean = kl_obs;
  stats.kl_coef = kl_coef;
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
  if (!is_main()) {
    return absl::FailedPreconditionError("only rank 0 saves a data-parallel PPO trainer");
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  RLHF_RETURN_IF_ERROR(checkpoint::SaveHfLlama(policy_, dir + "/policy", torch::kFloat32));
  if (critic_optimizer_) {
    RLHF_RETURN_IF_ERROR(checkpoint::SaveHfLlama(critic_, dir + "/critic", torch::kFloat32));
  }
  try {
    torch::serialize::OutputArchive policy_archive, critic_archive;
    policy_optimizer_->save(policy_archive);
    torch::serialize::OutputArchive archive;
    archive.write("policy", policy_archive);
    if (critic_optimizer_) {
      critic_optimizer_->save(critic_archive);
      archive.write("critic", critic_archive);
    }
    archive.save_to(dir + "/optimizer.pt");
  } catch (...) {
    return status::CurrentExceptionToStatus(absl::StrCat("saving ", dir, "/optimizer.pt"));
  }
  std::ostringstream rng;
  rng << rng_;
  nlohmann::json j = {{"step", step_}, {"kl_coef", kl_.value()}, {"shuffle_rng", rng.str()}};
  return file::WriteFileAtomically(dir + "/trainer.json", j.dump(2) + "\n");
}

absl::Status PpoTrainer::Restore(const std::string& dir) {
  internal::StepComm comm(options_.process_group);
  RLHF_RETURN_IF_ERROR(comm.Agree(RestoreLocal(dir)));
  return comm.CheckSame(comm.sharded() ? StateFingerprint() : 0,
                        absl::StrCat("the trainer state restored from ", dir));
}

absl::Status PpoTrainer::RestoreLocal(const std::string& dir) {
  std::ifstream in(dir + "/trainer.json");
  if (!in) return absl::NotFoundError(absl::StrCat("no ", dir, "/trainer.json"));
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("step") || !j["step"].is_number() ||
      !j.contains("kl_coef") || !j["kl_coef"].is_number() || !j.contains("shuffle_rng") ||
      !j["shuffle_rng"].is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(dir, "/trainer.json is malformed"));
  }
  RLHF_ASSIGN_OR_RETURN(model::Llama policy, checkpoint::LoadHfLlama(dir + "/policy"));
  RLHF_RETURN_IF_ERROR(CopyParameters(policy, policy_, dir + "/policy"));
  if (critic_optimizer_) {
    RLHF_ASSIGN_OR_RETURN(model::Llama critic, checkpoint::LoadHfLlama(dir + "/critic"));
    RLHF_RETURN_IF_ERROR(CopyParameters(critic, critic_, dir + "/critic"));
  }
  try {
    torch::serialize::InputArchive archive, policy_archive, critic_archive;
    archive.load_from(dir + "/optimizer.pt");
    archive.read("policy", policy_archive);
    policy_optimizer_->load(policy_archive);
    if (critic_optimizer_) {
      archive.read("critic", critic_archive);
      critic_optimizer_->load(critic_archive);
    }
  } catch (...) {
    return status::CurrentExceptionToStatus(absl::StrCat("loading ", dir, "/optimizer.pt"),
                                            absl::StatusCode::kInvalidArgument);
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
