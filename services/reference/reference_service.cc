#include "services/reference/reference_service.h"

#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/grpc/batched_unary.h"
#include "common/grpc/status_util.h"
#include "common/model/scoring.h"

namespace rlhf::reference {

struct ReferenceService::Item {
  std::vector<int64_t> tokens;
  int start = 1;
  double temperature = 1.0;
};

absl::Status Validate(const ReferenceServiceOptions& o) {
  if (o.max_request_sequences < 1) {
    return absl::InvalidArgumentError("max_request_sequences must be >= 1");
  }
  return batching::Validate(o.batching);
}

absl::StatusOr<std::unique_ptr<ReferenceService>> ReferenceService::Create(
    model::Llama model, const ReferenceServiceOptions& options) {
  if (absl::Status s = Validate(options); !s.ok()) return s;
  if (!model->config().lm_head) {
    return absl::InvalidArgumentError("the reference model needs an LM head");
  }
  return std::unique_ptr<ReferenceService>(new ReferenceService(std::move(model), options));
}

ReferenceService::ReferenceService(model::Llama model, const ReferenceServiceOptions& options)
    : options_(options), model_(std::move(model)) {
  model_->eval();
  batcher_ = std::make_unique<batching::DynamicBatcher<Item, std::vector<float>>>(
      options.batching, [this](const std::vector<Item>& items) { return RunBatch(items); });
}

ReferenceService::~ReferenceService() { batcher_->Stop(); }

absl::Status ReferenceService::CheckRequest(const rlhf::v1::LogProbsRequest& request) const {
  const auto& c = model_->config();
  const int n = request.sequences_size();
  if (n == 0) return absl::InvalidArgumentError("empty batch: no sequences");
  if (n > options_.max_request_sequences) {
    return absl::ResourceExhaustedError(absl::StrCat(
        n, " sequences in one request; the limit is ", options_.max_request_sequences));
  }
  if (!(request.temperature() >= 0) || std::isinf(request.temperature())) {
    return absl::InvalidArgumentError(
        absl::StrCat("temperature must be finite and >= 0 (0 means 1), got ", request.temperature()));
  }
  for (int i = 0; i < n; ++i) {
    const auto& seq = request.sequences(i);
    const int len = seq.tokens_size();
    if (seq.start() < 1 || seq.start() >= len) {
      return absl::InvalidArgumentError(absl::StrCat("sequence ", i, ": start ", seq.start(),
                                                     " must be in [1, ", len, ")"));
    }
    if (len > c.max_seq_len) {
      return absl::InvalidArgumentError(absl::StrCat("sequence ", i, ": ", len,
                                                     " tokens exceed the context of ",
                                                     c.max_seq_len));
    }
    for (int64_t id : seq.tokens()) {
      if (id < 0 || id >= c.vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat("sequence ", i, ": token id ", id,
                                                       " outside the vocabulary [0, ",
                                                       c.vocab_size, ")"));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::vector<float>>> ReferenceService::RunBatch(
    const std::vector<Item>& items) {
  // One forward per distinct temperature (normally all share one).
  std::map<double, std::vector<size_t>> by_temperature;
  for (size_t i = 0; i < items.size(); ++i) by_temperature[items[i].temperature].push_back(i);
  std::vector<std::vector<float>> out(items.size());
  for (const auto& [temperature, indices] : by_temperature) {
    std::vector<std::vector<int64_t>> seqs;
    for (size_t i : indices) seqs.push_back(items[i].tokens);
    auto scored = model::ScoreTokenLogProbs(model_, seqs, temperature);
    if (!scored.ok()) return scored.status();
    for (size_t k = 0; k < indices.size(); ++k) {
      const Item& item = items[indices[k]];
      auto& all = (*scored)[k];  // log-probs of tokens 1 .. len-1
      out[indices[k]].assign(all.begin() + (item.start - 1), all.end());
    }
  }
  return out;
}

::grpc::ServerUnaryReactor* ReferenceService::LogProbs(::grpc::CallbackServerContext* context,
                                                       const rlhf::v1::LogProbsRequest* request,
                                                       rlhf::v1::LogProbsResponse* response) {
  auto* reactor = context->DefaultReactor();
  if (absl::Status s = CheckRequest(*request); !s.ok()) {
    reactor->Finish(grpc_util::ToGrpcStatus(s));
    return reactor;
  }
  const double temperature = request->temperature() > 0 ? request->temperature() : 1.0;
  std::vector<Item> items;
  items.reserve(request->sequences_size());
  for (const auto& seq : request->sequences()) {
    items.push_back(Item{{seq.tokens().begin(), seq.tokens().end()}, seq.start(), temperature});
  }
  grpc_util::SubmitBatched<Item, std::vector<float>>(
      reactor, *batcher_, std::move(items), [response](std::vector<std::vector<float>>& r) {
        for (auto& lp : r) response->add_results()->mutable_logprobs()->Add(lp.begin(), lp.end());
      });
  return reactor;
}

}  // namespace rlhf::reference
