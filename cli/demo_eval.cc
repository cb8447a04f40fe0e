#include "cli/demo_eval.h"

#include <chrono>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/grpc/server.h"
#include "common/grpc/status_util.h"
#include "common/status/status_macros.h"
#include "rlhf/v1/services.grpc.pb.h"

namespace rlhf::cli {
namespace {

template <typename Stub, typename Request, typename Response>
absl::Status Call(const std::string& what, const std::string& address, Stub* stub,
                  ::grpc::Status (Stub::*method)(::grpc::ClientContext*, const Request&, Response*),
                  const Request& request, Response* response) {
  ::grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(5));
  ::grpc::Status status = (stub->*method)(&ctx, request, response);
  if (!status.ok()) {
    return absl::Status(grpc_util::FromGrpcStatus(status).code(),
                        absl::StrCat(what, " at ", address, ": ", status.error_message()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<StageEval> EvaluateStage(const world::World& world, const StageEvalOptions& o) {
  if (o.tokenizer == nullptr || o.rollout.empty() || o.samples < 1 || o.batch < 1) {
    return absl::InvalidArgumentError("EvaluateStage: a rollout, a tokenizer and samples >= 1");
  }
  const std::vector<world::Prompt>& prompts = world.eval();
  struct Sample {
    size_t prompt;
    std::vector<int64_t> prompt_tokens, response_tokens;
    std::vector<float> logprobs;
    std::string text;
  };
  std::vector<Sample> samples;
  for (size_t i = 0; i < prompts.size(); ++i) {
    std::vector<int64_t> tokens = {o.tokenizer->bos_id()};
    for (int id : o.tokenizer->Encode(prompts[i].Conversation())) tokens.push_back(id);
    for (int s = 0; s < o.samples; ++s) samples.push_back({i, tokens, {}, {}, ""});
  }

  auto rollout = rlhf::v1::Rollout::NewStub(grpc_util::CreateChannel(o.rollout));
  for (size_t begin = 0; begin < samples.size(); begin += o.batch) {
    const size_t end = std::min(samples.size(), begin + static_cast<size_t>(o.batch));
    rlhf::v1::GenerateRequest request;
    for (size_t i = begin; i < end; ++i) {
      auto* p = request.add_prompts();
      for (int64_t t : samples[i].prompt_tokens) p->add_tokens(t);
    }
    auto* s = request.mutable_sampling();
    s->set_temperature(static_cast<float>(o.temperature));
    s->set_max_new_tokens(o.max_new_tokens);
    s->set_seed(o.seed * 1000003 + begin);
    rlhf::v1::GenerateResponse response;
    RLHF_RETURN_IF_ERROR(Call("Generate", o.rollout, rollout.get(),
                              &rlhf::v1::Rollout::Stub::Generate, request, &response));
    if (response.generations_size() != static_cast<int>(end - begin)) {
      return absl::InternalError(absl::StrCat("Generate at ", o.rollout, " returned ",
                                              response.generations_size(), " generations for ",
                                              end - begin, " prompts"));
    }
    for (size_t i = begin; i < end; ++i) {
      const auto& g = response.generations(static_cast<int>(i - begin));
      samples[i].response_tokens.assign(g.tokens().begin(), g.tokens().end());
      samples[i].logprobs.assign(g.logprobs().begin(), g.logprobs().end());
      samples[i].text = g.text();
    }
  }

  StageEval out;
  std::vector<std::pair<const world::Prompt*, std::vector<world::GoldVerdict>>> verdicts;
  for (const world::Prompt& p : prompts) verdicts.push_back({&p, {}});
  std::map<world::Kind, int> shown;
  double tokens = 0;
  for (const Sample& s : samples) {
    const world::Prompt& p = prompts[s.prompt];
    verdicts[s.prompt].second.push_back(world::Judge(p, s.text));
    tokens += static_cast<double>(s.response_tokens.size());
    if (shown[p.kind]++ < 3) {
      out.examples.push_back(
          {{"kind", world::KindName(p.kind)}, {"prompt", p.text}, {"response", s.text}});
    }
  }
  out.gold = world::GoldMetrics(verdicts);
  out.mean_tokens = tokens / static_cast<double>(samples.size());

  if (!o.reward.empty()) {
    auto reward = rlhf::v1::Reward::NewStub(grpc_util::CreateChannel(o.reward));
    std::vector<std::vector<double>> per_prompt(prompts.size());
    for (size_t begin = 0; begin < samples.size(); begin += o.batch) {
      const size_t end = std::min(samples.size(), begin + static_cast<size_t>(o.batch));
      rlhf::v1::ScoreRequest request;
      std::vector<size_t> index;
      for (size_t i = begin; i < end; ++i) {
        if (samples[i].response_tokens.empty()) continue;  // nothing to score
        auto* item = request.add_items();
        for (int64_t t : samples[i].prompt_tokens) item->add_prompt_tokens(t);
        for (int64_t t : samples[i].response_tokens) item->add_response_tokens(t);
        item->set_prompt_text(prompts[samples[i].prompt].Conversation());
        item->set_response_text(samples[i].text);
        index.push_back(i);
      }
      if (index.empty()) continue;
      rlhf::v1::ScoreResponse response;
      RLHF_RETURN_IF_ERROR(Call("Score", o.reward, reward.get(), &rlhf::v1::Reward::Stub::Score,
                                request, &response));
      for (size_t k = 0; k < index.size() && k < static_cast<size_t>(response.scores_size()); ++k) {
        per_prompt[samples[index[k]].prompt].push_back(response.scores(static_cast<int>(k)));
      }
    }
    out.rm_score = world::MeanOverPrompts(per_prompt);
  }

  if (!o.reference.empty() && std::abs(o.temperature - 1.0) < 1e-9) {
    auto reference = rlhf::v1::Reference::NewStub(grpc_util::CreateChannel(o.reference));
    double kl = 0;
    int64_t n = 0;
    for (size_t begin = 0; begin < samples.size(); begin += o.batch) {
      const size_t end = std::min(samples.size(), begin + static_cast<size_t>(o.batch));
      rlhf::v1::LogProbsRequest request;
      request.set_temperature(1.0f);
      std::vector<size_t> index;
      for (size_t i = begin; i < end; ++i) {
        if (samples[i].response_tokens.empty()) continue;
        auto* seq = request.add_sequences();
        for (int64_t t : samples[i].prompt_tokens) seq->add_tokens(t);
        for (int64_t t : samples[i].response_tokens) seq->add_tokens(t);
        seq->set_start(static_cast<int32_t>(samples[i].prompt_tokens.size()));
        index.push_back(i);
      }
      if (index.empty()) continue;
      rlhf::v1::LogProbsResponse response;
      RLHF_RETURN_IF_ERROR(Call("LogProbs", o.reference, reference.get(),
                                &rlhf::v1::Reference::Stub::LogProbs, request, &response));
      for (size_t k = 0; k < index.size() && k < static_cast<size_t>(response.results_size());
           ++k) {
        const Sample& s = samples[index[k]];
        const auto& ref = response.results(static_cast<int>(k)).logprobs();
        double sum = 0;
        for (int t = 0; t < ref.size() && t < static_cast<int>(s.logprobs.size()); ++t) {
          sum += s.logprobs[t] - ref[t];
        }
        kl += sum;
        ++n;
      }
    }
    if (n > 0) out.kl = kl / static_cast<double>(n);
  }
  return out;
}

}  // namespace rlhf::cli
