// The reference-model service: per-token log-probs of given sequences under a frozen model
// (the PPO KL anchor; loaded with another checkpoint, the CAI feedback model's scorer).
//
// Protocol of LogProbs (see proto/rlhf/v1/services.proto for the contract):
//  1. The request is validated in the reaction (sizes, token ids, start positions); a bad one
//     is answered at once with INVALID_ARGUMENT or RESOURCE_EXHAUSTED.
//  2. Its sequences are submitted to a DynamicBatcher; a full queue is RESOURCE_EXHAUSTED.
//  3. The batcher's thread runs one teacher-forced forward for sequences of many requests and
//     finishes each reactor with its own results. The reaction never blocks.
//
// Thread-safe.
#ifndef RLHF_SERVICES_REFERENCE_REFERENCE_SERVICE_H_
#define RLHF_SERVICES_REFERENCE_REFERENCE_SERVICE_H_

#include <memory>

#include "absl/status/statusor.h"
#include "common/batching/dynamic_batcher.h"
#include "common/model/llama.h"
#include "rlhf/v1/services.grpc.pb.h"

namespace rlhf::reference {

struct ReferenceServiceOptions {
  /// Most sequences in one request (more is RESOURCE_EXHAUSTED).
  int max_request_sequences = 256;
  /// Server-side batching of sequences across requests.
  batching::BatcherOptions batching;
};

absl::Status Validate(const ReferenceServiceOptions& options);

class ReferenceService final : public rlhf::v1::Reference::CallbackService {
 public:
  // Takes ownership of `model` (used only from the batcher's thread).
  static absl::StatusOr<std::unique_ptr<ReferenceService>> Create(
      model::Llama model, const ReferenceServiceOptions& options);
  ~ReferenceService() override;

  ::grpc::ServerUnaryReactor* LogProbs(::grpc::CallbackServerContext* context,
                                       const rlhf::v1::LogProbsRequest* request,
                                       rlhf::v1::LogProbsResponse* response) override;

 private:
  struct Item;
  ReferenceService(model::Llama model, const ReferenceServiceOptions& options);
  absl::Status CheckRequest(const rlhf::v1::LogProbsRequest& request) const;
  absl::StatusOr<std::vector<std::vector<float>>> RunBatch(const std::vector<Item>& items);

  const ReferenceServiceOptions options_;
  model::Llama model_;
  std::unique_ptr<batching::DynamicBatcher<Item, std::vector<float>>> batcher_;
};

}  // namespace rlhf::reference

#endif  // RLHF_SERVICES_REFERENCE_REFERENCE_SERVICE_H_
