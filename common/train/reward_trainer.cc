#include "common/train/reward_trainer.h"

#include <algorithm>
#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/model/scoring.h"
#include "common/rl/preference.h"
#include "common/status/status_macros.h"
#include "common/train/data_parallel.h"
#include "common/train/train_state.h"

namespace rlhf::train {

struct RewardTrainer::State {
  model::Llama model{nullptr};
  std::unique_ptr<torch::optim::AdamW> optimizer;
  std::unique_ptr<dist::GradientSync> sync;
};

namespace {

// The checks of Create that need no communication.
absl::Status CheckInputs(const model::Llama& model, const std::vector<TokenizedPair>& pairs,
                         const RewardTrainerOptions& options) {
  RLHF_RETURN_IF_ERROR(Validate(options));
  const model::LlamaConfig& c = model->config();
  if (!c.scalar_head) return absl::InvalidArgumentError("the reward model needs a scalar head");
  if (pairs.empty()) return absl::InvalidArgumentError("no preference pairs to train on");
  for (size_t i = 0; i < pairs.size(); ++i) {
    for (const auto* seq : {&pairs[i].chosen, &pairs[i].rejected}) {
      if (seq->empty() || static_cast<int64_t>(seq->size()) > c.max_seq_len) {
        return absl::InvalidArgumentError(absl::StrCat("pair ", i, ": a sequence of ", seq->size(),
                                                       " tokens; the context is ", c.max_seq_len));
      }
      for (int64_t id : *seq) {
        if (id < 0 || id >= c.vocab_size) {
          return absl::InvalidArgumentError(
              absl::StrCat("pair ", i, ": token id ", id, " outside the vocabulary"));
        }
      }
    }
  }
  return absl::OkStatus();
}

int64_t DataFingerprint(const std::vector<TokenizedPair>& pairs, const RewardTrainerOptions& o) {
  Fingerprint f;
  for (int64_t v : {o.batch_pairs, o.micro_batch_pairs, static_cast<int64_t>(o.seed)}) f.Add(v);
  for (const TokenizedPair& p : pairs) {
    for (const auto* seq : {&p.chosen, &p.rejected}) {
      f.Add(static_cast<int64_t>(seq->size()));
      for (int64_t id : *seq) f.Add(id);
    }
    f.Add(static_cast<int64_t>(p.p_chosen * 1e6f));
  }
  return f.value();
}

}  // namespace

absl::Status Validate(const RewardTrainerOptions& o) {
  if (absl::Status s = Validate(o.optim); !s.ok()) return s;
  if (o.batch_pairs <= 0) return absl::InvalidArgumentError("batch_pairs must be > 0");
  const int64_t world = WorldSize(o.process_group);
  if (o.batch_pairs % world != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "batch_pairs ", o.batch_pairs, " must be a multiple of the world size ", world));
  }
  if (o.micro_batch_pairs <= 0 || (o.batch_pairs / world) % o.micro_batch_pairs != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "micro_batch_pairs must be > 0 and divide the pairs per rank, ", o.batch_pairs / world));
  }
  if (o.grad_bucket_bytes <= 0) return absl::InvalidArgumentError("grad_bucket_bytes must be > 0");
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<RewardTrainer>> RewardTrainer::Create(
    model::Llama model, std::vector<TokenizedPair> pairs, const RewardTrainerOptions& options) {
  RLHF_RETURN_IF_ERROR(AgreeOnStatus(options.process_group, CheckInputs(model, pairs, options)));
  const int64_t fingerprint = DataFingerprint(pairs, options);
  std::unique_ptr<RewardTrainer> trainer(
      new RewardTrainer(std::move(model), std::move(pairs), options));
  RLHF_RETURN_IF_ERROR(
      JoinDataParallel(options.process_group, fingerprint, trainer->state_->model));
  return trainer;
}

RewardTrainer::RewardTrainer(model::Llama model, std::vector<TokenizedPair> pairs,
                             const RewardTrainerOptions& options)
    : state_(std::make_unique<State>()), pairs_(std::move(pairs)), options_(options) {
  state_->model = std::move(model);
  state_->model->train();
  state_->optimizer = MakeAdamW(state_->model->parameters(), options.optim);
  if (WorldSize(options.process_group) > 1) {
    state_->sync = std::make_unique<dist::GradientSync>(
        options.process_group, state_->model->parameters(), options.grad_bucket_bytes);
  }
}

RewardTrainer::~RewardTrainer() = default;

model::Llama& RewardTrainer::model() { return state_->model; }

bool RewardTrainer::is_main() const { return IsMain(options_.process_group); }

double RewardTrainer::epoch() const {
  return static_cast<double>(step_ * options_.batch_pairs) / static_cast<double>(pairs_.size());
}

const TokenizedPair& RewardTrainer::PairAt(int64_t k) {
  const int64_t n = static_cast<int64_t>(pairs_.size());
  const int64_t epoch = k / n;
  if (epoch != order_epoch_) {
    order_ = EpochOrder(n, options_.seed, epoch);
    order_epoch_ = epoch;
  }
  return pairs_[order_[k % n]];
}

absl::StatusOr<RewardStepStats> RewardTrainer::Step() {
  auto& model = state_->model;
  auto& optimizer = *state_->optimizer;
  optimizer.zero_grad();
  RewardStepStats stats;
  stats.learning_rate = ScheduledLearningRate(options_.optim, step_);
  const int64_t micro = options_.micro_batch_pairs;
  // This rank's share: positions [first, first + batch_pairs / N) of the run's order. With equal
  // shares, (micro-batch mean loss) / (local accumulation steps) summed over the rank's micro-
  // batches and then averaged over the ranks is the mean loss of the global batch.
  const int64_t first =
      step_ * options_.batch_pairs + RankSlice(options_.batch_pairs, options_.process_group).first;
  const int64_t accumulation = options_.batch_pairs / WorldSize(options_.process_group) / micro;
  int64_t correct = 0;
  RLHF_RETURN_IF_ERROR(GuardedLocalStep(options_.process_group, "reward step failed", [&] {
    for (int64_t m = 0; m < accumulation; ++m) {
      std::vector<std::vector<int64_t>> seqs;
      std::vector<float> p;
      for (int64_t i = 0; i < micro; ++i) {
        const TokenizedPair& pair = PairAt(first + m * micro + i);
        seqs.push_back(pair.chosen);
        p.push_back(pair.p_chosen);
      }
      for (int64_t i = 0; i < micro; ++i) seqs.push_back(PairAt(first + m * micro + i).rejected);
      auto [tokens, mask] = model::RightPad(seqs);
      torch::Tensor values = model->Values(model->Trunk(tokens, mask));  // [2 micro, T]
      torch::Tensor last = (mask.sum(1) - 1).unsqueeze(1);
      torch::Tensor r = values.gather(1, last).squeeze(1);
      torch::Tensor r_chosen = r.narrow(0, 0, micro);
      torch::Tensor r_rejected = r.narrow(0, micro, micro);
      torch::Tensor loss = rl::SoftBradleyTerryLoss(r_chosen, r_rejected, torch::tensor(p));
      (loss / static_cast<double>(accumulation)).backward();
      stats.loss += loss.item<double>() / static_cast<double>(accumulation);
      correct += (r_chosen > r_rejected).sum().item<int64_t>();
    }
  }));
  if (state_->sync != nullptr) {
    RLHF_RETURN_IF_ERROR(state_->sync->Sync());
    torch::Tensor totals =
        torch::tensor({stats.loss, static_cast<double>(correct)}, torch::kFloat64);
    RLHF_RETURN_IF_ERROR(options_.process_group->AllReduceSum({totals}));
    stats.loss = totals[0].item<double>() / WorldSize(options_.process_group);
    correct = static_cast<int64_t>(std::llround(totals[1].item<double>()));
  }
  stats.grad_norm = ApplyGradients(optimizer, model->parameters(), options_.optim, step_);
  stats.accuracy = static_cast<double>(correct) / static_cast<double>(options_.batch_pairs);
  ++step_;
  return stats;
}

absl::Status RewardTrainer::Save(const std::string& dir) const {
  if (!is_main()) {
    return absl::FailedPreconditionError("only rank 0 saves a data-parallel trainer");
  }
  return SaveTrainState(dir, state_->model, *state_->optimizer,
                        {{"step", step_}, {"pairs", pairs_.size()}, {"seed", options_.seed}});
}

absl::Status RewardTrainer::Restore(const std::string& dir) {
  dist::ProcessGroup* group = options_.process_group;
  RLHF_RETURN_IF_ERROR(AgreeOnStatus(group, RestoreLocal(dir)));
  if (WorldSize(group) == 1) return absl::OkStatus();
  return group->CheckSameOnAllRanks(step_, absl::StrCat("the step restored from ", dir));
}

absl::Status RewardTrainer::RestoreLocal(const std::string& dir) {
  // Checked before anything is loaded, so that a refused restore changes nothing.
  std::ifstream in(dir + "/trainer.json");
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.contains("pairs") && j["pairs"].is_number_integer() &&
      j["pairs"].get<int64_t>() != static_cast<int64_t>(pairs_.size())) {
    return absl::FailedPreconditionError(absl::StrCat(
        dir, " was trained on ", j["pairs"].get<int64_t>(), " pairs; this run has ",
        pairs_.size(), " (resume with the same data)"));
  }
  RLHF_ASSIGN_OR_RETURN(nlohmann::json facts,
                        RestoreTrainState(dir, state_->model, *state_->optimizer));
  step_ = facts["step"].get<int64_t>();
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> ScoreSequences(model::Llama& model,
                                                  const std::vector<std::vector<int64_t>>& seqs,
                                                  int64_t batch) {
  std::vector<float> out;
  out.reserve(seqs.size());
  for (size_t i = 0; i < seqs.size(); i += batch) {
    const size_t end = std::min(seqs.size(), i + static_cast<size_t>(batch));
    std::vector<std::vector<int64_t>> chunk(seqs.begin() + i, seqs.begin() + end);
    RLHF_ASSIGN_OR_RETURN(auto values, model::ScoreValues(model, chunk));
    for (const auto& v : values) out.push_back(v.back());
  }
  return out;
}

}  // namespace rlhf::train
