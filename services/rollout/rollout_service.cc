#include "services/rollout/rollout_service.h"

#include <cmath>
#include <map>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "common/grpc/batched_unary.h"

namespace rlhf::rollout {

struct RolloutService::Item {
  std::vector<int64_t> prompt;
  model::SamplingOptions sampling;  // seed = this prompt's own seed
};

// One prompt's generation and the policy version that produced it.
struct RolloutService::Result {
  rlhf::v1::Generation generation;
  int64_t policy_version = -1;
};

model::SamplingOptions SamplingOptionsFromProto(const rlhf::v1::SamplingParams& p) {
  model::SamplingOptions o;
  o.temperature = p.temperature();
  o.top_k = p.top_k();
  o.top_p = p.top_p() > 0 ? p.top_p() : 1.0;
  o.max_new_tokens = p.max_new_tokens() > 0 ? p.max_new_tokens() : 64;
  o.stop_at_eos = !p.ignore_eos();
  o.seed = p.seed();
  return o;
}

namespace {

// Items that can share one engine call: everything but the seed equal.
auto GroupKey(const model::SamplingOptions& o) {
  return std::make_tuple(o.temperature, o.top_k, o.top_p, o.max_new_tokens, o.stop_at_eos);
}

}  // namespace

absl::Status Validate(const RolloutServiceOptions& o) {
  if (o.max_request_prompts < 1) {
    return absl::InvalidArgumentError("max_request_prompts must be >= 1");
  }
  return batching::Validate(o.batching);
}

absl::StatusOr<std::unique_ptr<RolloutService>> RolloutService::Create(
    std::shared_ptr<PolicyHolder> policy, std::unique_ptr<tokenizer::Tokenizer> tokenizer,
    const RolloutServiceOptions& options) {
  if (absl::Status s = Validate(options); !s.ok()) return s;
  if (policy == nullptr) return absl::InvalidArgumentError("no policy");
  if (tokenizer != nullptr && tokenizer->vocab_size() != policy->config().vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer has ", tokenizer->vocab_size(),
                                                   " tokens, the model ",
                                                   policy->config().vocab_size));
  }
  return std::unique_ptr<RolloutService>(
      new RolloutService(std::move(policy), std::move(tokenizer), options));
}

RolloutService::RolloutService(std::shared_ptr<PolicyHolder> policy,
                               std::unique_ptr<tokenizer::Tokenizer> tokenizer,
                               const RolloutServiceOptions& options)
    : options_(options), policy_(std::move(policy)), tokenizer_(std::move(tokenizer)) {
  batcher_ = std::make_unique<batching::DynamicBatcher<Item, Result>>(
      options.batching, [this](const std::vector<Item>& items) { return RunBatch(items); });
}

RolloutService::~RolloutService() { batcher_->Stop(); }

absl::StatusOr<std::vector<RolloutService::Item>> RolloutService::MakeItems(
    const rlhf::v1::GenerateRequest& request) const {
  const int n = request.prompts_size();
  if (n == 0) return absl::InvalidArgumentError("empty batch: no prompts");
  if (n > options_.max_request_prompts) {
    return absl::ResourceExhaustedError(
        absl::StrCat(n, " prompts in one request; the limit is ", options_.max_request_prompts));
  }
  // Unset (0) fields take their defaults below; a value no default may stand in for is an error.
  const rlhf::v1::SamplingParams& p = request.sampling();
  if (p.max_new_tokens() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("sampling.max_new_tokens must be >= 0 (0 means 64), got ", p.max_new_tokens()));
  }
  if (!(p.top_p() >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("sampling.top_p must be in [0, 1] (0 means 1), got ", p.top_p()));
  }
  if (!std::isfinite(p.temperature())) {
    return absl::InvalidArgumentError(
        absl::StrCat("sampling.temperature must be finite, got ", p.temperature()));
  }
  model::SamplingOptions sampling = SamplingOptionsFromProto(p);
  if (absl::Status s = model::Validate(sampling); !s.ok()) return s;
  std::vector<Item> items;
  for (int i = 0; i < n; ++i) {
    const auto& p = request.prompts(i);
    Item item{{p.tokens().begin(), p.tokens().end()}, sampling};
    item.sampling.seed = sampling.seed + i;
    if (item.prompt.empty() && !p.text().empty()) {
      if (tokenizer_ == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("prompt ", i, ": text given but this worker has no tokenizer"));
      }
      item.prompt.push_back(tokenizer_->bos_id());
      for (int id : tokenizer_->Encode(p.text())) item.prompt.push_back(id);
    }
    items.push_back(std::move(item));
  }
  // Token ranges, emptiness and context length: the engine's own checks, run here so a bad
  // prompt fails its request and not the batch it would have joined.
  std::vector<std::vector<int64_t>> prompts;
  for (const auto& item : items) prompts.push_back(item.prompt);
  if (absl::Status s = model::CheckPrompts(prompts, policy_->config(), sampling); !s.ok()) {
    return s;
  }
  return items;
}

absl::StatusOr<std::vector<RolloutService::Result>> RolloutService::RunBatch(
    const std::vector<Item>& items) {
  const PolicyHolder::Policy policy = policy_->Snapshot();  // one version for the whole batch
  std::map<decltype(GroupKey(items[0].sampling)), std::vector<size_t>> groups;
  for (size_t i = 0; i < items.size(); ++i) groups[GroupKey(items[i].sampling)].push_back(i);
  std::vector<Result> out(items.size());
  for (const auto& [key, indices] : groups) {
    std::vector<std::vector<int64_t>> prompts;
    std::vector<uint64_t> seeds;
    for (size_t i : indices) {
      prompts.push_back(items[i].prompt);
      seeds.push_back(items[i].sampling.seed);
    }
    auto results = policy.engine->Generate(prompts, items[indices[0]].sampling, seeds);
    if (!results.ok()) return results.status();
    for (size_t k = 0; k < indices.size(); ++k) {
      const auto& r = (*results)[k];
      out[indices[k]].policy_version = policy.version;
      rlhf::v1::Generation& g = out[indices[k]].generation;
      g.mutable_tokens()->Add(r.tokens.begin(), r.tokens.end());
      g.mutable_logprobs()->Add(r.logprobs.begin(), r.logprobs.end());
      g.set_finish_reason(r.finish_reason == model::FinishReason::kEos
                              ? rlhf::v1::FINISH_REASON_EOS
                              : rlhf::v1::FINISH_REASON_LENGTH);
      if (tokenizer_ != nullptr) {
        g.set_text(tokenizer_->Decode(std::vector<int>(r.tokens.begin(), r.tokens.end())));
      }
    }
  }
  return out;
}

::grpc::ServerUnaryReactor* RolloutService::Generate(::grpc::CallbackServerContext* context,
                                                     const rlhf::v1::GenerateRequest* request,
                                                     rlhf::v1::GenerateResponse* response) {
  auto* reactor = context->DefaultReactor();
  auto items = MakeItems(*request);
  if (!items.ok()) {
    reactor->Finish(grpc_util::ToGrpcStatus(items.status()));
    return reactor;
  }
  grpc_util::SubmitBatched<Item, Result>(
      reactor, *batcher_, std::move(*items), [response](std::vector<Result>& results) {
        // A request is never split across batches, so all its results share one version.
        response->set_policy_version(results.front().policy_version);
        for (auto& r : results) *response->add_generations() = std::move(r.generation);
      });
  return reactor;
}

}  // namespace rlhf::rollout
