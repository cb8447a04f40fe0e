#include "common/train/sft_trainer.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/model/scoring.h"
#include "common/status/status_macros.h"
#include "common/train/data_parallel.h"
#include "common/train/train_state.h"

namespace rlhf::train {

struct SftTrainer::State {
  model::Llama model{nullptr};
  std::unique_ptr<torch::optim::AdamW> optimizer;
  std::unique_ptr<dist::GradientSync> sync;
};

namespace {

// The checks of Create that need no communication.
absl::Status CheckInputs(const model::Llama& model, const std::vector<TokenizedExample>& examples,
                         const SftTrainerOptions& options) {
  RLHF_RETURN_IF_ERROR(Validate(options));
  const model::LlamaConfig& c = model->config();
  if (!c.lm_head) return absl::InvalidArgumentError("SFT needs a model with an LM head");
  if (examples.empty()) return absl::InvalidArgumentError("no demonstrations to train on");
  for (size_t i = 0; i < examples.size(); ++i) {
    const auto& e = examples[i];
    if (e.tokens.size() < 2 || e.tokens.size() != e.train.size() ||
        static_cast<int64_t>(e.tokens.size()) > c.max_seq_len) {
      return absl::InvalidArgumentError(
          absl::StrCat("example ", i, ": ", e.tokens.size(), " tokens (2 to ", c.max_seq_len, ")"));
    }
    for (int64_t id : e.tokens) {
      if (id < 0 || id >= c.vocab_size) {
        return absl::InvalidArgumentError(
            absl::StrCat("example ", i, ": token id ", id, " outside the vocabulary"));
      }
    }
  }
  return absl::OkStatus();
}

int64_t DataFingerprint(const std::vector<TokenizedExample>& examples, const SftTrainerOptions& o) {
  Fingerprint f;
  for (int64_t v : {o.batch_sequences, o.micro_batch_sequences, o.bucket_batches,
                    static_cast<int64_t>(o.seed)}) {
    f.Add(v);
  }
  for (const TokenizedExample& e : examples) {
    f.Add(static_cast<int64_t>(e.tokens.size()));
    for (size_t k = 0; k < e.tokens.size(); ++k) f.Add(e.tokens[k] * 2 + e.train[k]);
  }
  return f.value();
}

// Sum of -log p(target) over trained targets, and their count, for `batch`.
std::pair<torch::Tensor, int64_t> LossSum(model::Llama& model,
                                          const std::vector<const TokenizedExample*>& batch) {
  std::vector<std::vector<int64_t>> seqs;
  for (const auto* e : batch) seqs.push_back(e->tokens);
  auto [tokens, mask] = model::RightPad(seqs);
  const int64_t b = tokens.size(0), t = tokens.size(1);
  auto train = torch::zeros({b, t}, torch::kFloat32);
  auto* tp = train.data_ptr<float>();
  int64_t count = 0;
  for (int64_t i = 0; i < b; ++i) {
    for (size_t k = 1; k < batch[i]->train.size(); ++k) {
      if (batch[i]->train[k]) {
        tp[i * t + k] = 1;
        ++count;
      }
    }
  }
  torch::Tensor logits = model->forward(tokens, mask);  // [B, T, V]
  torch::Tensor logp = torch::log_softmax(logits.narrow(1, 0, t - 1), -1);
  torch::Tensor target_logp = logp.gather(2, tokens.narrow(1, 1, t - 1).unsqueeze(2)).squeeze(2);
  return {-(target_logp * train.narrow(1, 1, t - 1)).sum(), count};
}

}  // namespace

absl::StatusOr<std::vector<TokenizedExample>> TokenizeDemonstrations(
    const std::vector<data::Demonstration>& demos, const tokenizer::Tokenizer& tok,
    int64_t max_seq_len, const std::string& path, const data::ReadOptions& options,
    data::ReadReport* report) {
  std::vector<TokenizedExample> out;
  for (const data::Demonstration& d : demos) {
    TokenizedExample e;
    e.tokens.push_back(tok.bos_id());
    e.train.push_back(0);
    size_t last_trained = 0;
    for (size_t s = 0; s < d.segments.size(); ++s) {
      if (d.segments[s].train) last_trained = s;
    }
    for (size_t s = 0; s < d.segments.size(); ++s) {
      for (int id : tok.Encode(d.segments[s].text)) {
        e.tokens.push_back(id);
        e.train.push_back(d.segments[s].train ? 1 : 0);
      }
      if (s == last_trained && d.segments[s].train && tok.eos_id() >= 0) {
        e.tokens.push_back(tok.eos_id());
        e.train.push_back(1);
      }
    }
    if (static_cast<int64_t>(e.tokens.size()) > max_seq_len) {
      const std::string problem = absl::StrCat(path, ":", d.line, ": ", e.tokens.size(),
                                               " tokens; the context is ", max_seq_len);
      if (options.strict) return absl::InvalidArgumentError(problem);
      report->problems.push_back(problem);
      if (++report->skipped > options.max_bad) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": more than ", options.max_bad, " bad records; latest: ", problem));
      }
      continue;
    }
    out.push_back(std::move(e));
  }
  return out;
}

absl::Status Validate(const SftTrainerOptions& o) {
  if (absl::Status s = Validate(o.optim); !s.ok()) return s;
  if (o.batch_sequences <= 0) return absl::InvalidArgumentError("batch_sequences must be > 0");
  if (o.micro_batch_sequences <= 0) {
    return absl::InvalidArgumentError("micro_batch_sequences must be > 0");
  }
  if (o.bucket_batches <= 0) return absl::InvalidArgumentError("bucket_batches must be > 0");
  if (o.grad_bucket_bytes <= 0) return absl::InvalidArgumentError("grad_bucket_bytes must be > 0");
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<SftTrainer>> SftTrainer::Create(
    model::Llama model, std::vector<TokenizedExample> examples, const SftTrainerOptions& options) {
  RLHF_RETURN_IF_ERROR(AgreeOnStatus(options.process_group, CheckInputs(model, examples, options)));
  const int64_t fingerprint = DataFingerprint(examples, options);
  std::unique_ptr<SftTrainer> trainer(
      new SftTrainer(std::move(model), std::move(examples), options));
  RLHF_RETURN_IF_ERROR(
      JoinDataParallel(options.process_group, fingerprint, trainer->state_->model));
  return trainer;
}

SftTrainer::SftTrainer(model::Llama model, std::vector<TokenizedExample> examples,
                       const SftTrainerOptions& options)
    : state_(std::make_unique<State>()), examples_(std::move(examples)), options_(options) {
  state_->model = std::move(model);
  state_->model->train();
  state_->optimizer = MakeAdamW(state_->model->parameters(), options.optim);
  if (WorldSize(options.process_group) > 1) {
    state_->sync = std::make_unique<dist::GradientSync>(
        options.process_group, state_->model->parameters(), options.grad_bucket_bytes);
  }
}

SftTrainer::~SftTrainer() = default;

model::Llama& SftTrainer::model() { return state_->model; }

bool SftTrainer::is_main() const { return IsMain(options_.process_group); }

int64_t SftTrainer::steps_per_epoch() const {
  const int64_t n = static_cast<int64_t>(examples_.size());
  return (n + options_.batch_sequences - 1) / options_.batch_sequences;
}

std::vector<int64_t> SftTrainer::Batch(int64_t step) {
  const int64_t epoch = step / steps_per_epoch();
  if (epoch != plan_epoch_) {
    std::vector<int64_t> order = EpochOrder(static_cast<int64_t>(examples_.size()), options_.seed,
                                            epoch);
    const size_t window = static_cast<size_t>(options_.bucket_batches * options_.batch_sequences);
    for (size_t w = 0; w < order.size(); w += window) {
      auto end = order.begin() + std::min(order.size(), w + window);
      std::stable_sort(order.begin() + w, end, [this](int64_t a, int64_t b) {
        return examples_[a].tokens.size() < examples_[b].tokens.size();
      });
    }
    plan_.clear();
    for (size_t i = 0; i < order.size(); i += options_.batch_sequences) {
      plan_.emplace_back(order.begin() + i,
                         order.begin() + std::min(order.size(), i + options_.batch_sequences));
    }
    // Shuffle the batches so that lengths do not rise through the epoch.
    const std::vector<int64_t> batch_order =
        EpochOrder(static_cast<int64_t>(plan_.size()), options_.seed + 1, epoch);
    std::vector<std::vector<int64_t>> shuffled;
    for (int64_t b : batch_order) shuffled.push_back(std::move(plan_[b]));
    plan_ = std::move(shuffled);
    plan_epoch_ = epoch;
  }
  return plan_[step % steps_per_epoch()];
}

absl::StatusOr<SftStepStats> SftTrainer::Step() {
  auto& model = state_->model;
  auto& optimizer = *state_->optimizer;
  optimizer.zero_grad();
  const std::vector<int64_t> batch = Batch(step_);
  int64_t total = 0;
  for (int64_t i : batch) {
    for (size_t k = 1; k < examples_[i].train.size(); ++k) total += examples_[i].train[k];
  }
  SftStepStats stats;
  stats.tokens = total;
  stats.learning_rate = ScheduledLearningRate(options_.optim, step_);
  dist::ProcessGroup* group = options_.process_group;
  // `total` counts the whole global batch (every rank sees the plan), so the sum over ranks of
  // world * (local token loss sum) / total, divided by world in the gradient mean, is the
  // single-process token mean.
  const std::pair<int64_t, int64_t> slice = RankSlice(static_cast<int64_t>(batch.size()), group);
  const int64_t begin = slice.first;  // named copies: a lambda cannot capture a binding (C++17)
  const int64_t end = slice.second;
  const double world = WorldSize(group);
  RLHF_RETURN_IF_ERROR(GuardedLocalStep(group, "SFT step failed", [&] {
    if (total == 0) return;
    for (int64_t m = begin; m < end; m += options_.micro_batch_sequences) {
      std::vector<const TokenizedExample*> micro;
      for (int64_t k = m; k < std::min(end, m + options_.micro_batch_sequences); ++k) {
        micro.push_back(&examples_[batch[k]]);
      }
      auto [sum, count] = LossSum(model, micro);
      if (count == 0) continue;
      torch::Tensor loss = sum / static_cast<double>(total);  // this share of the token mean
      (world == 1 ? loss : loss * world).backward();
      stats.loss += loss.item<double>();
    }
  }));
  if (state_->sync != nullptr) {
    RLHF_RETURN_IF_ERROR(state_->sync->Sync());
    torch::Tensor loss = torch::tensor({stats.loss}, torch::kFloat64);
    RLHF_RETURN_IF_ERROR(group->AllReduceSum({loss}));
    stats.loss = loss.item<double>();
  }
  stats.grad_norm = ApplyGradients(optimizer, model->parameters(), options_.optim, step_);
  ++step_;
  return stats;
}

absl::StatusOr<double> SftTrainer::EvalLoss(const std::vector<TokenizedExample>& examples,
                                            int64_t batch) {
  auto& model = state_->model;
  model->eval();
  torch::NoGradGuard no_grad;
  double sum = 0;
  int64_t count = 0;
  const auto [begin, end] =
      RankSlice(static_cast<int64_t>(examples.size()), options_.process_group);
  for (int64_t i = begin; i < end; i += batch) {
    std::vector<const TokenizedExample*> chunk;
    for (int64_t k = i; k < std::min(end, i + batch); ++k) chunk.push_back(&examples[k]);
    auto [s, c] = LossSum(model, chunk);
    sum += s.item<double>();
    count += c;
  }
  model->train();
  if (WorldSize(options_.process_group) > 1) {
    torch::Tensor totals = torch::tensor({sum, static_cast<double>(count)}, torch::kFloat64);
    RLHF_RETURN_IF_ERROR(options_.process_group->AllReduceSum({totals}));
    sum = totals[0].item<double>();
    count = static_cast<int64_t>(std::llround(totals[1].item<double>()));
  }
  if (count == 0) return absl::InvalidArgumentError("no trained tokens to evaluate");
  return sum / static_cast<double>(count);
}

absl::Status SftTrainer::Save(const std::string& dir) const {
  if (!is_main()) {
    return absl::FailedPreconditionError("only rank 0 saves a data-parallel trainer");
  }
  return SaveTrainState(dir, state_->model, *state_->optimizer,
                        {{"step", step_}, {"examples", examples_.size()}, {"seed", options_.seed}});
}

absl::Status SftTrainer::Restore(const std::string& dir) {
  dist::ProcessGroup* group = options_.process_group;
  RLHF_RETURN_IF_ERROR(AgreeOnStatus(group, RestoreLocal(dir)));
  if (WorldSize(group) == 1) return absl::OkStatus();
  return group->CheckSameOnAllRanks(step_, absl::StrCat("the step restored from ", dir));
}

absl::Status SftTrainer::RestoreLocal(const std::string& dir) {
  // Checked before anything is loaded, so that a refused restore changes nothing.
  std::ifstream in(dir + "/trainer.json");
  const nlohmann::json saved = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (saved.is_object() && saved.contains("examples") &&
      saved["examples"] != static_cast<int64_t>(examples_.size())) {
    return absl::FailedPreconditionError(absl::StrCat(
        dir, " was trained on ", saved["examples"].dump(), " sequences; this run has ",
        examples_.size(), " (resume with the same data)"));
  }
  RLHF_ASSIGN_OR_RETURN(nlohmann::json facts,
                        RestoreTrainState(dir, state_->model, *state_->optimizer));
  step_ = facts["step"].get<int64_t>();
  return absl::OkStatus();
}

}  // namespace rlhf::train
