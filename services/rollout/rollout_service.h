// The rollout worker's Generate service: batched sampling with the KV-cache engine for jobs
// (SFT data, CAI revision and labelling, evaluation).
//
// Protocol of Generate (contract in proto/rlhf/v1/services.proto):
//  1. The reaction validates the request (batch size, prompts, token ids, sampling options,
//     context length) and encodes text prompts; errors are answered at once.
//  2. Its prompts go to a DynamicBatcher; the batcher's thread groups prompts of all queued
//     requests that share sampling options into one engine call (each prompt keeps its own
//     seed, so results do not depend on the grouping) and finishes each reactor.
//
// Thread-safe.
#ifndef RLHF_SERVICES_ROLLOUT_ROLLOUT_SERVICE_H_
#define RLHF_SERVICES_ROLLOUT_ROLLOUT_SERVICE_H_

#include <memory>

#include "absl/status/statusor.h"
#include "common/batching/dynamic_batcher.h"
#include "common/model/generation.h"
#include "common/tokenizer/tokenizer.h"
#include "rlhf/v1/services.grpc.pb.h"

namespace rlhf::rollout {

struct RolloutServiceOptions {
  /// Most prompts in one Generate request (more is RESOURCE_EXHAUSTED).
  int max_request_prompts = 256;
  /// Server-side batching of prompts across requests.
  batching::BatcherOptions batching;
};

absl::Status Validate(const RolloutServiceOptions& options);

class RolloutService final : public rlhf::v1::Rollout::CallbackService {
 public:
  // `tokenizer` may be null (token-id prompts only, no text in results).
  static absl::StatusOr<std::unique_ptr<RolloutService>> Create(
      std::unique_ptr<model::GenerationEngine> engine,
      std::unique_ptr<tokenizer::Tokenizer> tokenizer, int64_t policy_version,
      const RolloutServiceOptions& options);
  ~RolloutService() override;

  ::grpc::ServerUnaryReactor* Generate(::grpc::CallbackServerContext* context,
                                       const rlhf::v1::GenerateRequest* request,
                                       rlhf::v1::GenerateResponse* response) override;

  struct Item;

 private:
  RolloutService(std::unique_ptr<model::GenerationEngine> engine,
                 std::unique_ptr<tokenizer::Tokenizer> tokenizer, int64_t policy_version,
                 const RolloutServiceOptions& options);
  absl::StatusOr<std::vector<Item>> MakeItems(const rlhf::v1::GenerateRequest& request) const;
  absl::StatusOr<std::vector<rlhf::v1::Generation>> RunBatch(const std::vector<Item>& items);

  const RolloutServiceOptions options_;
  const std::unique_ptr<model::GenerationEngine> engine_;
  const std::unique_ptr<tokenizer::Tokenizer> tokenizer_;
  const int64_t policy_version_;
  std::unique_ptr<batching::DynamicBatcher<Item, rlhf::v1::Generation>> batcher_;
};

}  // namespace rlhf::rollout

#endif  // RLHF_SERVICES_ROLLOUT_ROLLOUT_SERVICE_H_
