// The rollout worker's PPO loop against real in-process Reward (rule) and Reference services
// and a fake Learner (fake_learner.h), all on 127.0.0.1:0.
#include "services/rollout/worker.h"

#include <gtest/gtest.h>

#include <set>

#include "common/grpc/server.h"
#include "common/model/scoring.h"
#include "services/reference/reference_service.h"
#include "services/reward/reward_service.h"
#include "services/rollout/fake_learner.h"
#include "services/rollout/rollout_service.h"
#include "common/testing/tiny_llama.h"

namespace rlhf::rollout {
namespace {

using rlhf::v1::Trajectory;
using testing::FakeLearner;

constexpr float kTemperature = 0.8f;
constexpr int kMaxNewTokens = 6;
constexpr absl::Duration kWait = absl::Seconds(60);

model::LlamaConfig TinyConfig() {
  return ::rlhf::testing::TinyLlamaConfig(/*vocab_size=*/32);
}

model::Llama RandomModel(uint64_t seed) {
  auto model = model::CreateRandomLlama(TinyConfig(), seed);
  CHECK(model.ok()) << model.status();
  return *model;
}

// 32 pieces: <unk> <s> </s>, "▁", a..z, "▁a", "▁t" (ids match the model's bos 1 / eos 2).
std::unique_ptr<tokenizer::Tokenizer> TinyTokenizer() {
  std::vector<tokenizer::PieceSpec> pieces = {{"<unk>", 0, tokenizer::PieceType::kUnknown},
                                              {"<s>", 0, tokenizer::PieceType::kControl},
                                              {"</s>", 0, tokenizer::PieceType::kControl},
                                              {"\xE2\x96\x81", 0}};
  for (char c = 'a'; c <= 'z'; ++c) pieces.push_back({std::string(1, c), 0});
  pieces.push_back(
      {"\xE2\x96\x81"
       "a",
       1});
  pieces.push_back(
      {"\xE2\x96\x81"
       "t",
       1});
  auto tok = tokenizer::BuildSentencePieceTokenizer(pieces, {});
  CHECK(tok.ok()) << tok.status();
  return std::move(*tok);
}

codec::NamedTensors ParametersOf(const model::Llama& model) {
  codec::NamedTensors out;
  for (const auto& p : model->named_parameters()) {
    out.emplace_back(p.key(), p.value().detach().clone());
  }
  return out;
}

std::vector<rlhf::v1::Prompt> MakePrompts(const std::vector<std::vector<int64_t>>& token_lists,
                                          int64_t first_index, const std::string& text = "") {
  std::vector<rlhf::v1::Prompt> prompts;
  int64_t index = first_index;
  for (const auto& tokens : token_lists) {
    rlhf::v1::Prompt p;
    p.set_index(index++);
    p.mutable_tokens()->Add(tokens.begin(), tokens.end());
    prompts.push_back(p);
  }
  if (!text.empty()) {
    rlhf::v1::Prompt p;
    p.set_index(index);
    p.set_text(text);
    prompts.push_back(p);
  }
  return prompts;
}

double MetricValue(prometheus::Registry& registry, const std::string& name) {
  for (const auto& family : registry.Collect()) {
    if (family.name != name) continue;
    double sum = 0;
    for (const auto& m : family.metric) sum += m.counter.value + m.gauge.value;
    return sum;
  }
  return -1;
}

class WorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    policy_model_ = RandomModel(1);
    decoder_ = TinyTokenizer();

    rlhf::v1::RewardRule rule;
    rule.set_kind(rlhf::v1::RewardRule::CONTAINS);
    rule.set_word("a");
    rule.set_weight(2.0);
    auto scorer = reward::CreateRuleScorer({rule});
    ASSERT_TRUE(scorer.ok()) << scorer.status();
    auto reward = reward::RewardService::Create(std::move(*scorer), {});
    ASSERT_TRUE(reward.ok()) << reward.status();
    reward_ = std::move(*reward);
    auto reference = reference::ReferenceService::Create(RandomModel(3), {});
    ASSERT_TRUE(reference.ok()) << reference.status();
    reference_ = std::move(*reference);

    rlhf::v1::SamplingParams sampling;
    sampling.set_temperature(kTemperature);
    sampling.set_max_new_tokens(kMaxNewTokens);
    sampling.set_top_k(20);
    sampling.set_seed(1000);
    learner_ = std::make_unique<FakeLearner>(sampling);
    learner_->Publish(0, ParametersOf(policy_model_));

    reward_server_ = StartServer(reward_.get(), "rlhf.v1.Reward");
    reference_server_ = StartServer(reference_.get(), "rlhf.v1.Reference");
    learner_server_ = StartServer(learner_.get(), "rlhf.v1.Learner");
    reference_stub_ =
        rlhf::v1::Reference::NewStub(grpc_util::CreateChannel(reference_server_->address()));

    options_.learner_address = learner_server_->address();
    options_.reward_address = reward_server_->address();
    options_.reference_address = reference_server_->address();
    options_.worker_id = "w1";
    options_.batch_prompts = 2;
    options_.rpc_deadline = absl::Seconds(30);
    options_.initial_backoff = absl::Milliseconds(10);
    options_.max_backoff = absl::Milliseconds(100);
  }

  void TearDown() override {
    if (worker_) worker_->Stop(absl::ZeroDuration());
    for (auto* server : {&learner_server_, &reference_server_, &reward_server_}) {
      if (*server) (*server)->Shutdown();
    }
  }

  static std::unique_ptr<grpc_util::Server> StartServer(::grpc::Service* service,
                                                        const std::string& name) {
    auto server = grpc_util::Server::Start({}, {service}, {name});
    CHECK(server.ok()) << server.status();
    CHECK((grpc_util::WaitForServing(grpc_util::CreateChannel((*server)->address()), name,
                                     absl::Now() + absl::Seconds(10))
               .ok()));
    return std::move(*server);
  }

  void StartWorker() {
    auto policy = PolicyHolder::Create(policy_model_, /*version=*/-1);
    ASSERT_TRUE(policy.ok()) << policy.status();
    auto worker = RolloutWorker::Create(options_, *policy, TinyTokenizer(), registry_);
    ASSERT_TRUE(worker.ok()) << worker.status();
    worker_ = std::move(*worker);
    worker_->Start();
  }

  // Stops the worker and returns how long Stop took.
  absl::Duration StopWorker(absl::Duration grace) {
    const absl::Time start = absl::Now();
    worker_->Stop(grace);
    return absl::Now() - start;
  }

  // Checks everything a trajectory must satisfy when generated by `model` at `version`.
  void ExpectConsistent(const Trajectory& t, model::Llama& model, int64_t version);

  model::Llama policy_model_{nullptr};
  std::unique_ptr<tokenizer::Tokenizer> decoder_;
  std::unique_ptr<reward::RewardService> reward_;
  std::unique_ptr<reference::ReferenceService> reference_;
  std::unique_ptr<FakeLearner> learner_;
  std::unique_ptr<grpc_util::Server> reward_server_, reference_server_, learner_server_;
  std::unique_ptr<rlhf::v1::Reference::Stub> reference_stub_;
  WorkerOptions options_;
  prometheus::Registry registry_;
  std::unique_ptr<RolloutWorker> worker_;
};

void WorkerTest::ExpectConsistent(const Trajectory& t, model::Llama& model, int64_t version) {
  SCOPED_TRACE(t.id());
  EXPECT_EQ(t.id().rfind("w1/", 0), 0u);
  EXPECT_EQ(t.worker_id(), "w1");
  EXPECT_EQ(t.policy_version(), version);
  const int n = t.response_tokens_size();
  ASSERT_GE(n, 1);
  ASSERT_LE(n, kMaxNewTokens);
  ASSERT_EQ(t.behaviour_logprobs_size(), n);
  ASSERT_EQ(t.ref_logprobs_size(), n);
  EXPECT_EQ(t.finish_reason() == rlhf::v1::FINISH_REASON_EOS, t.response_tokens(n - 1) == 2);

  // The lease's prompt i samples with seed + i: regenerate it alone.
  const auto leases = learner_->leases();
  const auto& lease = leases.at(t.lease_id());
  size_t i = 0;
  while (i < lease.prompts.size() && lease.prompts[i].index() != t.prompt_index()) ++i;
  ASSERT_LT(i, lease.prompts.size());
  const std::vector<int64_t> prompt(t.prompt_tokens().begin(), t.prompt_tokens().end());
  const std::vector<int64_t> response(t.response_tokens().begin(), t.response_tokens().end());
  if (lease.prompts[i].tokens_size() > 0) {
    EXPECT_EQ(prompt, std::vector<int64_t>(lease.prompts[i].tokens().begin(),
                                           lease.prompts[i].tokens().end()));
  }
  rlhf::v1::SamplingParams params;
  params.set_temperature(kTemperature);
  params.set_max_new_tokens(kMaxNewTokens);
  params.set_top_k(20);
  auto engine = model::GenerationEngine::Create(model);
  ASSERT_TRUE(engine.ok());
  auto again = (*engine)->Generate({prompt}, SamplingOptionsFromProto(params), {lease.seed + i});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)[0].tokens, response);

  // Behaviour log-probs: teacher-forced scores of the same tokens at the same temperature.
  std::vector<int64_t> full = prompt;
  full.insert(full.end(), response.begin(), response.end());
  auto scores = model::ScoreTokenLogProbs(model, {full}, kTemperature);
  ASSERT_TRUE(scores.ok()) << scores.status();
  for (int k = 0; k < n; ++k) {
    EXPECT_NEAR(t.behaviour_logprobs(k), (*scores)[0][prompt.size() - 1 + k], 1e-4) << k;
  }

  // Reference log-probs: what the reference service answers for the same sequence.
  rlhf::v1::LogProbsRequest req;
  req.set_temperature(kTemperature);
  auto* seq = req.add_sequences();
  seq->mutable_tokens()->Add(full.begin(), full.end());
  seq->set_start(prompt.size());
  rlhf::v1::LogProbsResponse resp;
  ::grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  ASSERT_TRUE(reference_stub_->LogProbs(&ctx, req, &resp).ok());
  for (int k = 0; k < n; ++k) EXPECT_NEAR(t.ref_logprobs(k), resp.results(0).logprobs(k), 1e-5);

  // Reward: the CONTAINS "a" rule on the decoded response.
  const std::string text = decoder_->Decode(std::vector<int>(response.begin(), response.end()));
  EXPECT_FLOAT_EQ(t.reward(), text.find('a') != std::string::npos ? 2.0f : 0.0f) << text;
}

TEST_F(WorkerTest, GeneratesScoresAndPushesEveryLeasedPrompt) {
  learner_->AddPrompts(
      MakePrompts({{1, 5, 9, 13}, {1, 4}, {1, 20, 21, 22, 7}, {1, 30}}, 0, "a bat sat"));
  StartWorker();
  ASSERT_TRUE(learner_->AwaitKept(5, kWait));
  EXPECT_LT(StopWorker(absl::Seconds(5)), absl::Seconds(5));

  const auto kept = learner_->kept();
  std::set<int64_t> indices;
  for (const auto& [id, t] : kept) {
    ExpectConsistent(t, policy_model_, 0);
    EXPECT_TRUE(indices.insert(t.prompt_index()).second) << "prompt used twice: " << id;
  }
  EXPECT_EQ(indices, (std::set<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(learner_->received().size(), 5u);  // nothing sent twice
  const WorkerStats s = worker_->Stats();
  EXPECT_EQ(s.generated, 5);
  EXPECT_EQ(s.acked_accepted, 5);
  EXPECT_EQ(s.unacked, 0);
  EXPECT_EQ(s.resent, 0);
  EXPECT_EQ(s.weight_syncs, 1);
  EXPECT_EQ(s.policy_version, 0);
  EXPECT_EQ(MetricValue(registry_, "rlhf_rollout_trajectories_generated_total"), 5);
  EXPECT_EQ(MetricValue(registry_, "rlhf_rollout_acks_total"), 5);
  EXPECT_GT(MetricValue(registry_, "rlhf_rollout_weight_sync_bytes_total"), 0);
}

TEST_F(WorkerTest, SwapsToTheVersionALeaseNames) {
  learner_->AddPrompts(MakePrompts({{1, 5, 9}, {1, 6}}, 0));
  StartWorker();
  ASSERT_TRUE(learner_->AwaitKept(2, kWait));
  model::Llama v1 = RandomModel(5);
  learner_->Publish(1, ParametersOf(v1));
  learner_->AddPrompts(MakePrompts({{1, 5, 9}, {1, 6}}, 2));
  ASSERT_TRUE(learner_->AwaitKept(4, kWait));
  StopWorker(absl::Seconds(5));

  for (const auto& [id, t] : learner_->kept()) {
    if (t.prompt_index() < 2) {
      ExpectConsistent(t, policy_model_, 0);
    } else {
      ExpectConsistent(t, v1, 1);
    }
  }
  const WorkerStats s = worker_->Stats();
  EXPECT_EQ(s.weight_syncs, 2);
  EXPECT_EQ(s.policy_version, 1);
  EXPECT_EQ(MetricValue(registry_, "rlhf_rollout_policy_version"), 1);
}

TEST_F(WorkerTest, ResendsExactlyTheUnackedAfterTheStreamBreaks) {
  // The first stream keeps 3 trajectories, acks only the first, and fails.
  learner_->FailStream(/*stream=*/0, /*after=*/3, /*acked=*/1);
  learner_->AddPrompts(MakePrompts({{1, 3}, {1, 4}, {1, 5}, {1, 6}, {1, 7}, {1, 8}}, 0));
  options_.batch_prompts = 3;
  StartWorker();
  ASSERT_TRUE(learner_->AwaitKept(6, kWait));
  // Every kept trajectory is eventually acked.
  const WorkerStats before_stop = worker_->Stats();
  StopWorker(absl::Seconds(5));
  const WorkerStats s = worker_->Stats();
  EXPECT_EQ(s.unacked, 0) << "before stop: " << before_stop.unacked;

  std::map<std::string, int> times;
  std::set<std::string> acked_on_first, unacked_on_first;
  for (const auto& r : learner_->received()) {
    ++times[r.trajectory.id()];
    if (r.stream == 0) (r.acked ? acked_on_first : unacked_on_first).insert(r.trajectory.id());
  }
  EXPECT_EQ(acked_on_first.size(), 1u);
  EXPECT_EQ(unacked_on_first.size(), 2u);
  EXPECT_EQ(times.size(), 6u);  // none lost
  for (const auto& [id, n] : times) {
    // Re-sent exactly when the learner had it without acking it.
    EXPECT_EQ(n, unacked_on_first.count(id) ? 2 : 1) << id;
  }
  EXPECT_GE(learner_->streams(), 2);
  EXPECT_EQ(s.generated, 6);
  EXPECT_EQ(s.acked_duplicate, 2);
  EXPECT_EQ(s.acked_accepted, 4);
  EXPECT_GE(s.resent, 2);
  for (const auto& [id, t] : learner_->kept()) ExpectConsistent(t, policy_model_, 0);
}

TEST_F(WorkerTest, BlocksAtMaxUnackedAndStopsPromptly) {
  learner_->SetAcking(false);
  learner_->AddPrompts(MakePrompts({{1, 3}, {1, 4}, {1, 5}}, 0));
  options_.batch_prompts = 3;
  options_.max_unacked = 2;
  StartWorker();
  ASSERT_TRUE(learner_->AwaitReceived(2, kWait));
  EXPECT_EQ(worker_->Stats().unacked, 2);  // the third waits for an ack
  EXPECT_LT(StopWorker(absl::Milliseconds(300)), absl::Seconds(3));
  EXPECT_EQ(learner_->received().size(), 2u);
  EXPECT_EQ(worker_->Stats().generated, 2);
  EXPECT_EQ(worker_->Stats().unacked, 2);
  EXPECT_GT(MetricValue(registry_, "rlhf_rollout_push_blocked_seconds_total"), 0);
  // The lease whose trajectories could not all be handed over goes back.
  EXPECT_EQ(learner_->returned_leases().size(), 1u);
}

TEST_F(WorkerTest, ReturnsTheLeaseWhileItsWeightsAreUnavailable) {
  learner_->SetWeightsError(::grpc::Status(::grpc::StatusCode::NOT_FOUND, "not yet"));
  learner_->AddPrompts(MakePrompts({{1, 3}, {1, 4}}, 0));
  StartWorker();
  ASSERT_TRUE(learner_->AwaitReturned(1, kWait));
  EXPECT_EQ(worker_->Stats().generated, 0);
  learner_->SetWeightsError(::grpc::Status::OK);
  ASSERT_TRUE(learner_->AwaitKept(2, kWait));
  StopWorker(absl::Seconds(5));
  const WorkerStats s = worker_->Stats();
  EXPECT_GE(s.leases_returned, 1);
  EXPECT_EQ(s.weight_syncs, 1);
  EXPECT_EQ(s.acked_accepted, 2);
  for (const auto& [id, t] : learner_->kept()) ExpectConsistent(t, policy_model_, 0);
}

TEST_F(WorkerTest, ReturnsALeaseItCannotGenerate) {
  learner_->AddPrompts(MakePrompts({{1, 3}, {1, 999}}, 0));  // 999 is outside the vocabulary
  StartWorker();
  ASSERT_TRUE(learner_->AwaitReturned(1, kWait));
  EXPECT_LT(StopWorker(absl::Seconds(1)), absl::Seconds(3));
  EXPECT_EQ(worker_->Stats().generated, 0);
  EXPECT_GE(worker_->Stats().leases_returned, 1);
  EXPECT_TRUE(learner_->received().empty());
}

TEST_F(WorkerTest, StopsPromptlyWhileWaitingForAnAbsentLearner) {
  learner_server_->Shutdown();
  StartWorker();
  EXPECT_LT(StopWorker(absl::Seconds(1)), absl::Seconds(3));
  EXPECT_EQ(worker_->Stats().generated, 0);
}

TEST(WorkerOptionsTest, ValidateNamesTheBadField) {
  WorkerOptions o;
  o.learner_address = "l:1";
  o.reward_address = "r:1";
  o.reference_address = "x:1";
  o.worker_id = "w";
  EXPECT_TRUE(Validate(o).ok());
  WorkerOptions bad = o;
  bad.reward_address.clear();
  EXPECT_NE(Validate(bad).message().find("reward"), std::string::npos);
  bad = o;
  bad.max_backoff = absl::Milliseconds(1);
  EXPECT_NE(Validate(bad).message().find("backoff"), std::string::npos);
  bad = o;
  bad.max_unacked = 0;
  EXPECT_NE(Validate(bad).message().find("max_unacked"), std::string::npos);
}

}  // namespace
}  // namespace rlhf::rollout
