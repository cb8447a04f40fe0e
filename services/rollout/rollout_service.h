// The rollout worker's Generate service: batched sampling with the KV-cache engine for jobs
// (SFT data, CAI revision and labelling, evaluation).
//
// Protocol of Generate (contract in proto/rlhf/v1/services.proto):
//  1. The reaction validates the request (batch size, prompts, token ids, sampling options,
//     context length) and encodes text prompts; errors are answered at once.
//  2. Its prompts go to a DynamicBatcher; the batcher's thread takes one PolicyHolder snapshot
//     per batch (a batch never mixes weight versions, and a version swapped in by the worker's
//     loop is used from the next batch on), groups prompts of all queued requests that share
//     sampling options into one engine call (each prompt keeps its own seed, so results do not
//     depend on the grouping) and finishes each reactor with the snapshot's version.
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
#include "services/rollout/policy_holder.h"

namespace rlhf::rollout {

struct RolloutServiceOptions {
  /// Most prompts in one Generate request (more is RESOURCE_EXHAUSTED).
  int max_request_prompts = 256;
  /// Server-side batching of prompts across requests.
  batching::BatcherOptions batching;
};

absl::Status Validate(const RolloutServiceOptions& options);

// The engine's sampling options for `params` (0 max_new_tokens = 64, top_p 0 = off,
// stop_at_eos = !ignore_eos, seed = the base seed). Not validated: see model::Validate.
model::SamplingOptions SamplingOptionsFromProto(const rlhf::v1::SamplingParams& params);

class RolloutService final : public rlhf::v1::Rollout::CallbackService {
 public:
  // Generates with whatever `policy` holds at each batch (shared with the worker's loop, which
  // swaps versions in). `tokenizer` may be null (token-id prompts only, no text in results).
  // Errors: InvalidArgument for bad options, a null policy, or a tokenizer whose vocabulary
  // differs from the model's.
  static absl::StatusOr<std::unique_ptr<RolloutService>> Create(
      std::shared_ptr<PolicyHolder> policy, std::unique_ptr<tokenizer::Tokenizer> tokenizer,
      const RolloutServiceOptions& options);
  ~RolloutService() override;

  ::grpc::ServerUnaryReactor* Generate(::grpc::CallbackServerContext* context,
                                       const rlhf::v1::GenerateRequest* request,
                                       rlhf::v1::GenerateResponse* response) override;

  struct Item;
  struct Result;

 private:
  RolloutService(std::shared_ptr<PolicyHolder> policy,
                 std::unique_ptr<tokenizer::Tokenizer> tokenizer,
                 const RolloutServiceOptions& options);
  absl::StatusOr<std::vector<Item>> MakeItems(const rlhf::v1::GenerateRequest& request) const;
  absl::StatusOr<std::vector<Result>> RunBatch(const std::vector<Item>& items);

  const RolloutServiceOptions options_;
  const std::shared_ptr<PolicyHolder> policy_;
  const std::unique_ptr<tokenizer::Tokenizer> tokenizer_;
  std::unique_ptr<batching::DynamicBatcher<Item, Result>> batcher_;
};

}  // namespace rlhf::rollout

#endif  // RLHF_SERVICES_ROLLOUT_ROLLOUT_SERVICE_H_
