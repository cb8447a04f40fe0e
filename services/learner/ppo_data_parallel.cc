#include "services/learner/ppo_data_parallel.h"

#include <cstring>
#include <exception>
#include <iterator>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/train/data_parallel.h"
#include "common/status/exception.h"

namespace rlhf::learner::internal {
namespace {

using train::Fingerprint;

int64_t Bits(double v) {
  int64_t bits;
  std::memcpy(&bits, &v, sizeof(bits));
  return bits;
}

// A token id and a float (a log-prob) in one value.
int64_t Pack(int64_t id, float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof(bits));
  return static_cast<int64_t>((static_cast<uint64_t>(id) << 32) | bits);
}

void AddOptional(Fingerprint& f, const std::optional<double>& v) {
  f.Add(v.has_value());
  f.Add(v.has_value() ? Bits(*v) : 0);
}

void AddModel(Fingerprint& f, const model::Llama& m) {
  f.Add(m.is_empty());
  if (m.is_empty()) return;  // no critic (RLOO, GRPO)
  const model::LlamaConfig& c = m->config();
  for (int64_t v : {c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size,
                    c.max_seq_len, Bits(c.rms_norm_eps), Bits(c.rope_theta),
                    int64_t{c.tie_embeddings}, int64_t{c.lm_head}, int64_t{c.scalar_head}}) {
    f.Add(v);
  }
  for (const torch::Tensor& p : m->parameters()) {
    f.Add(p.dim());
    for (int64_t size : p.sizes()) f.Add(size);
    f.Add(static_cast<int64_t>(p.scalar_type()));
  }
}

}  // namespace

int64_t TrainerFingerprint(const PpoTrainerOptions& o, const model::Llama& policy,
                           const model::Llama& critic) {
  Fingerprint f;
  const rl::PpoStepOptions& s = o.step;
  for (int64_t v : {static_cast<int64_t>(s.eos_penalty.mode),
                    Bits(s.eos_penalty.penalty),
                    static_cast<int64_t>(s.token_rewards.estimator),
                    Bits(s.gae.gamma),
                    Bits(s.gae.lambda),
                    int64_t{s.whiten.shift_mean},
                    Bits(s.whiten.eps),
                    Bits(s.policy.clip_low),
                    Bits(s.policy.clip_high),
                    static_cast<int64_t>(s.policy.aggregation),
                    static_cast<int64_t>(s.value.aggregation),
                    Bits(s.vf_coef),
                    int64_t{o.whiten_advantages},
                    Bits(o.kl.init_kl_coef),
                    Bits(o.kl.horizon),
                    Bits(o.kl.max_error),
                    int64_t{o.minibatch_size},
                    int64_t{o.epochs},
                    Bits(o.learning_rate),
                    Bits(o.critic_learning_rate),
                    Bits(o.max_grad_norm),
                    Bits(o.entropy_coef),
                    Bits(o.temperature),
                    static_cast<int64_t>(o.seed),
                    int64_t{o.decoupled},
                    int64_t{o.group_size}}) {
    f.Add(v);
  }
  f.Add(s.token_rewards.score_clip.has_value());
  if (s.token_rewards.score_clip.has_value()) {
    f.Add(Bits(s.token_rewards.score_clip->low));
    f.Add(Bits(s.token_rewards.score_clip->high));
  }
  AddOptional(f, s.policy.dual_clip);
  AddOptional(f, s.value.clip);
  AddOptional(f, o.kl.target);
  AddOptional(f, o.behaviour_weight_cap);
  f.Add(o.group_advantage.has_value());
  if (o.group_advantage.has_value()) {
    f.Add(static_cast<int64_t>(o.group_advantage->baseline));
    f.Add(Bits(o.group_advantage->eps));
  }
  AddModel(f, policy);
  AddModel(f, critic);
  return f.value();
}

int64_t BatchFingerprint(const std::vector<rlhf::v1::Trajectory>& batch, int64_t state) {
  Fingerprint f;
  f.Add(state);
  f.Add(static_cast<int64_t>(batch.size()));
  for (const rlhf::v1::Trajectory& t : batch) {
    f.Add(t.policy_version());
    f.Add(Pack(t.finish_reason(), t.reward()));
    f.Add(t.prompt_tokens_size());
    for (int64_t id : t.prompt_tokens()) f.Add(id);
    f.Add(t.response_tokens_size());
    f.Add(t.behaviour_logprobs_size());
    for (int j = 0; j < t.response_tokens_size(); ++j) {
      f.Add(Pack(t.response_tokens(j), j < t.ref_logprobs_size() ? t.ref_logprobs(j) : 0.0f));
    }
    for (float lp : t.behaviour_logprobs()) f.Add(Pack(0, lp));
  }
  return f.value();
}

int64_t StateFingerprint(int64_t step, double kl_coef, const std::mt19937_64& rng) {
  std::mt19937_64 probe = rng;
  Fingerprint f;
  f.Add(step);
  f.Add(Bits(kl_coef));
  f.Add(static_cast<int64_t>(probe()));
  return f.value();
}

absl::Status Guarded(const std::function<void()>& fn) {
  return status::CatchExceptions("PPO step failed", [&] {
    fn();
    return absl::OkStatus();
  });
}

StepComm::StepComm(dist::ProcessGroup* group)
    : group_(group != nullptr && group->world_size() > 1 ? group : nullptr) {}

absl::Status StepComm::Timed(const std::function<absl::Status()>& collective) {
  const absl::Time start = absl::Now();
  absl::Status status = collective();
  seconds_ += absl::ToDoubleSeconds(absl::Now() - start);
  return status;
}

absl::Status StepComm::Agree(const absl::Status& local) {
  if (group_ == nullptr) return local;
  return Timed([&] { return group_->AllOk(local); });
}

absl::Status StepComm::CheckSame(int64_t value, absl::string_view what) {
  if (group_ == nullptr) return absl::OkStatus();
  return Timed([&] { return group_->CheckSameOnAllRanks(value, what); });
}

absl::Status StepComm::AllReduceSum(absl::Span<const torch::Tensor> tensors) {
  if (group_ == nullptr) return absl::OkStatus();
  return Timed([&] { return group_->AllReduceSum(tensors); });
}

absl::Status StepComm::AllReduceSum(LossSums* sums) {
  if (group_ == nullptr) return absl::OkStatus();
  double* fields[] = {&sums->policy_loss,      &sums->value_loss,      &sums->clipfrac,
                      &sums->value_clipfrac,   &sums->approx_kl,       &sums->entropy,
                      &sums->behaviour_weight, &sums->behaviour_tokens};
  torch::Tensor t = torch::empty({static_cast<int64_t>(std::size(fields))}, torch::kFloat64);
  double* values = t.data_ptr<double>();
  for (size_t i = 0; i < std::size(fields); ++i) values[i] = *fields[i];
  absl::Status status = AllReduceSum({t});
  if (!status.ok()) return status;
  for (size_t i = 0; i < std::size(fields); ++i) *fields[i] = values[i];
  return absl::OkStatus();
}

absl::Status StepComm::Sync(dist::GradientSync& sync) {
  if (group_ == nullptr) return absl::OkStatus();
  return Timed([&] { return sync.Sync(); });
}

}  // namespace rlhf::learner::internal
