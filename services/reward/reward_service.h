// The reward service: scalar scores of (prompt, response) pairs from a Scorer (rules or a
// scalar-head model), batched across requests on the server.
//
// Protocol of Score (contract in proto/rlhf/v1/services.proto):
//  1. The request is validated in the reaction (batch size, empty responses, the scorer's own
//     checks); a bad one is answered at once with INVALID_ARGUMENT or RESOURCE_EXHAUSTED.
//  2. Its items go to a DynamicBatcher (full queue: RESOURCE_EXHAUSTED); the batcher's thread
//     scores many requests' items together and finishes each reactor with its own scores.
//
// Thread-safe.
#ifndef RLHF_SERVICES_REWARD_REWARD_SERVICE_H_
#define RLHF_SERVICES_REWARD_REWARD_SERVICE_H_

#include <memory>

#include "absl/status/statusor.h"
#include "common/batching/dynamic_batcher.h"
#include "rlhf/v1/services.grpc.pb.h"
#include "services/reward/scorers.h"

namespace rlhf::reward {

struct RewardServiceOptions {
  /// Most items in one request (more is RESOURCE_EXHAUSTED).
  int max_request_items = 256;
  /// Most bytes in an item's prompt or response text (more is INVALID_ARGUMENT).
  int max_text_bytes = 262144;
  /// Server-side batching of items across requests.
  batching::BatcherOptions batching;
};

absl::Status Validate(const RewardServiceOptions& options);

class RewardService final : public rlhf::v1::Reward::CallbackService {
 public:
  static absl::StatusOr<std::unique_ptr<RewardService>> Create(
      std::unique_ptr<Scorer> scorer, const RewardServiceOptions& options);
  ~RewardService() override;

  ::grpc::ServerUnaryReactor* Score(::grpc::CallbackServerContext* context,
                                    const rlhf::v1::ScoreRequest* request,
                                    rlhf::v1::ScoreResponse* response) override;

 private:
  RewardService(std::unique_ptr<Scorer> scorer, const RewardServiceOptions& options);
  absl::Status CheckRequest(const rlhf::v1::ScoreRequest& request) const;

  const RewardServiceOptions options_;
  std::unique_ptr<Scorer> scorer_;  // used only on the batcher's thread after construction
  std::unique_ptr<batching::DynamicBatcher<ScoreInput, float>> batcher_;
};

}  // namespace rlhf::reward

#endif  // RLHF_SERVICES_REWARD_REWARD_SERVICE_H_
