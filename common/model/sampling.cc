#include "common/model/sampling.h"

namespace rlhf::model {

TokenSampler::TokenSampler(const SamplingOptions& options, int64_t rows,
                           absl::Span<const uint64_t> seeds)
    : options_(options) {
  rngs_.reserve(rows);
  for (int64_t i = 0; i < rows; ++i) {
    const uint64_t seed = seeds.empty() ? options.seed + static_cast<uint64_t>(i) : seeds[i];
    std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
    rngs_.emplace_back(seq);
  }
}

torch::Tensor TokenSampler::Draw(const torch::Tensor& probs) {
  const int64_t rows = probs.size(0);
  auto u = torch::empty({rows, 1}, probs.options());
  auto* up = u.data_ptr<float>();
  for (int64_t i = 0; i < rows; ++i) up[i] = std::generate_canonical<float, 24>(rngs_[i]);
  auto cdf = probs.cumsum(-1);
  auto target = u * cdf.narrow(1, cdf.size(1) - 1, 1);
  // The first index whose CDF reaches the target; zero-probability entries are never chosen.
  return (cdf < target).sum(-1).clamp_max(probs.size(1) - 1);
}

std::pair<torch::Tensor, torch::Tensor> TokenSampler::Sample(const torch::Tensor& logits_in) {
  auto logits = logits_in.to(torch::kFloat32);
  const bool greedy = options_.temperature == 0;
  auto scaled = greedy ? logits : logits / options_.temperature;
  auto logp = torch::log_softmax(scaled, -1);
  torch::Tensor tokens;
  if (greedy) {
    tokens = logits.argmax(-1);
  } else if (options_.top_k > 0 || options_.top_p < 1) {
    auto [sorted, order] = scaled.sort(-1, /*descending=*/true);
    auto probs = torch::softmax(sorted, -1);
    const int64_t vocab = probs.size(1);
    if (options_.top_k > 0 && options_.top_k < vocab) {
      probs.narrow(1, options_.top_k, vocab - options_.top_k).zero_();
      probs.div_(probs.sum(-1, /*keepdim=*/true));
    }
    if (options_.top_p < 1) {
      // Drop a token when the mass before it already reaches top_p (the first always stays).
      auto before = probs.cumsum(-1) - probs;
      probs.masked_fill_(before >= options_.top_p, 0.0);
    }
    tokens = order.gather(1, Draw(probs).unsqueeze(1)).squeeze(1);
  } else {
    tokens = Draw(logp.exp());
  }
  auto chosen = logp.gather(1, tokens.unsqueeze(1)).squeeze(1).contiguous();
  return {tokens.contiguous(), chosen};
}

}  // namespace rlhf::model
