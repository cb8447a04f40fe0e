#include "services/reward/reward_service.h"

#include "absl/strings/str_cat.h"
#include "common/grpc/batched_unary.h"

namespace rlhf::reward {

absl::Status Validate(const RewardServiceOptions& o) {
  if (o.max_request_items < 1) return absl::InvalidArgumentError("max_request_items must be >= 1");
  if (o.max_text_bytes < 1) {
    return absl::InvalidArgumentError("limits.max_text_bytes must be >= 1");
  }
  return batching::Validate(o.batching);
}

absl::StatusOr<std::unique_ptr<RewardService>> RewardService::Create(
    std::unique_ptr<Scorer> scorer, const RewardServiceOptions& options) {
  if (absl::Status s = Validate(options); !s.ok()) return s;
  if (scorer == nullptr) return absl::InvalidArgumentError("no scorer");
  return std::unique_ptr<RewardService>(new RewardService(std::move(scorer), options));
}

RewardService::RewardService(std::unique_ptr<Scorer> scorer, const RewardServiceOptions& options)
    : options_(options), scorer_(std::move(scorer)) {
  batcher_ = std::make_unique<batching::DynamicBatcher<ScoreInput, float>>(
      options.batching,
      [this](const std::vector<ScoreInput>& items) { return scorer_->Score(items); });
}

RewardService::~RewardService() { batcher_->Stop(); }

absl::Status RewardService::CheckRequest(const rlhf::v1::ScoreRequest& request) const {
  const int n = request.items_size();
  if (n == 0) return absl::InvalidArgumentError("empty batch: no items");
  if (n > options_.max_request_items) {
    return absl::ResourceExhaustedError(
        absl::StrCat(n, " items in one request; the limit is ", options_.max_request_items));
  }
  for (int i = 0; i < n; ++i) {
    const auto& item = request.items(i);
    if (item.response_tokens().empty() && item.response_text().empty()) {
      return absl::InvalidArgumentError(absl::StrCat("item ", i, ": empty response"));
    }
    for (const auto& [field, text] : {std::pair{"prompt_text", &item.prompt_text()},
                                      std::pair{"response_text", &item.response_text()}}) {
      if (text->size() > static_cast<size_t>(options_.max_text_bytes)) {
        return absl::InvalidArgumentError(
            absl::StrCat("item ", i, ": ", field, " has ", text->size(),
                         " bytes; the limit is limits.max_text_bytes = ", options_.max_text_bytes));
      }
    }
  }
  return absl::OkStatus();
}

::grpc::ServerUnaryReactor* RewardService::Score(::grpc::CallbackServerContext* context,
                                                 const rlhf::v1::ScoreRequest* request,
                                                 rlhf::v1::ScoreResponse* response) {
  auto* reactor = context->DefaultReactor();
  absl::Status valid = CheckRequest(*request);
  std::vector<ScoreInput> items;
  for (int i = 0; valid.ok() && i < request->items_size(); ++i) {
    const auto& it = request->items(i);
    items.push_back(ScoreInput{{it.prompt_tokens().begin(), it.prompt_tokens().end()},
                               {it.response_tokens().begin(), it.response_tokens().end()},
                               it.prompt_text(),
                               it.response_text()});
    if (absl::Status s = scorer_->Check(items.back()); !s.ok()) {
      valid = absl::Status(s.code(), absl::StrCat("item ", i, ": ", s.message()));
    }
  }
  if (!valid.ok()) {
    reactor->Finish(grpc_util::ToGrpcStatus(valid));
    return reactor;
  }
  grpc_util::SubmitBatched<ScoreInput, float>(
      reactor, *batcher_, std::move(items),
      [response](std::vector<float>& scores) {
        response->mutable_scores()->Add(scores.begin(), scores.end());
      });
  return reactor;
}

}  // namespace rlhf::reward
