#include "common/model/scoring.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace rlhf::model {
namespace {

absl::Status CheckSequences(const std::vector<std::vector<int64_t>>& seqs,
                            const LlamaConfig& c, size_t min_len) {
  if (seqs.empty()) return absl::InvalidArgumentError("no sequences given");
  for (size_t i = 0; i < seqs.size(); ++i) {
    if (seqs[i].size() < min_len) {
      return absl::InvalidArgumentError(
          absl::StrCat("sequence ", i, " has ", seqs[i].size(), " tokens; need >= ", min_len));
    }
    if (static_cast<int64_t>(seqs[i].size()) > c.max_seq_len) {
      return absl::InvalidArgumentError(absl::StrCat("sequence ", i, " has ", seqs[i].size(),
                                                     " tokens; max_seq_len is ", c.max_seq_len));
    }
    for (int64_t id : seqs[i]) {
      if (id < 0 || id >= c.vocab_size) {
        return absl::InvalidArgumentError(
            absl::StrCat("sequence ", i, " has token id ", id, " outside vocab [0, ",
                         c.vocab_size, ")"));
      }
    }
  }
  return absl::OkStatus();
}

// Copies row i of a [B, T] float tensor's first n entries.
std::vector<float> Row(const torch::Tensor& t, int64_t i, int64_t n) {
  auto row = t[i].narrow(0, 0, n).to(torch::kFloat32).contiguous();
  return std::vector<float>(row.data_ptr<float>(), row.data_ptr<float>() + n);
}

}  // namespace

std::pair<torch::Tensor, torch::Tensor> RightPad(const std::vector<std::vector<int64_t>>& seqs) {
  int64_t t = 0;
  for (const auto& s : seqs) t = std::max<int64_t>(t, s.size());
  const int64_t b = seqs.size();
  auto tokens = torch::zeros({b, t}, torch::kLong);
  auto mask = torch::zeros({b, t}, torch::kLong);
  auto* tp = tokens.data_ptr<int64_t>();
  auto* mp = mask.data_ptr<int64_t>();
  for (int64_t i = 0; i < b; ++i) {
    std::copy(seqs[i].begin(), seqs[i].end(), tp + i * t);
    std::fill(mp + i * t, mp + i * t + seqs[i].size(), 1);
  }
  return {tokens, mask};
}

absl::StatusOr<std::vector<std::vector<float>>> ScoreTokenLogProbs(
    Llama& model, const std::vector<std::vector<int64_t>>& seqs, double temperature) {
  const LlamaConfig& c = model->config();
  if (!c.lm_head) return absl::FailedPreconditionError("model has no LM head");
  if (!(temperature > 0)) {
    return absl::InvalidArgumentError(absl::StrCat("temperature must be > 0, got ", temperature));
  }
  if (absl::Status s = CheckSequences(seqs, c, 1); !s.ok()) return s;
  c10::InferenceMode inference;
  auto [tokens, mask] = RightPad(seqs);
  auto logits = model->forward(tokens, mask);
  const int64_t t = tokens.size(1);
  auto logp = torch::log_softmax(logits.narrow(1, 0, t - 1) / temperature, -1);
  auto chosen = logp.gather(2, tokens.narrow(1, 1, t - 1).unsqueeze(2)).squeeze(2);
  std::vector<std::vector<float>> out;
  out.reserve(seqs.size());
  for (size_t i = 0; i < seqs.size(); ++i) out.push_back(Row(chosen, i, seqs[i].size() - 1));
  return out;
}

absl::StatusOr<std::vector<std::vector<float>>> ScoreValues(
    Llama& model, const std::vector<std::vector<int64_t>>& seqs) {
  const LlamaConfig& c = model->config();
  if (!c.scalar_head) return absl::FailedPreconditionError("model has no scalar head");
  if (absl::Status s = CheckSequences(seqs, c, 1); !s.ok()) return s;
  c10::InferenceMode inference;
  auto [tokens, mask] = RightPad(seqs);
  auto values = model->Values(model->Trunk(tokens, mask));
  std::vector<std::vector<float>> out;
  out.reserve(seqs.size());
  for (size_t i = 0; i < seqs.size(); ++i) out.push_back(Row(values, i, seqs[i].size()));
  return out;
}

}  // namespace rlhf::model
