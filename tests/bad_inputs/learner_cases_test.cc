// Bad inputs to the learner's RPCs, against a real learner serving on 127.0.0.1:0: trajectories
// that lie (NaN/Inf numbers, tokens outside the vocabulary, lengths that disagree, versions from
// the future, leases it never granted, prompts it never leased), resent and oversized ones, bad
// lease and weight requests. After each row the same server accepts a good trajectory, and the
// ledger shows that nothing it had accepted before was lost.
#include <cmath>
#include <limits>
#include <thread>

#include "absl/time/clock.h"
#include "common/grpc/server.h"
#include "services/learner/learner.h"
#include "services/learner/ppo_test_util.h"
#include "tests/bad_inputs/catalogue.h"

namespace rlhf::bad_inputs {
namespace {

using rlhf::v1::Ack;
using rlhf::v1::Trajectory;

constexpr int kPrompts = 32;
constexpr double kLeaseSeconds = 0.3;
constexpr int kMaxMessageBytes = 1 << 20;

rlhf::v1::LearnerConfig Config() {
  rlhf::v1::LearnerConfig c;
  c.mutable_ppo()->set_batch_size(64);  // never filled here: nothing is trained or consumed
  c.mutable_ppo()->set_minibatch_size(32);
  c.mutable_sampling()->set_max_new_tokens(8);
  c.set_total_steps(1);
  c.set_max_queue(64);
  c.set_lease_seconds(kLeaseSeconds);
  c.mutable_limits()->set_max_batch(16);
  return c;
}

// The learner's prompts: prompt i is the tokens {1, 5 + i % 20, 6}.
std::vector<rlhf::v1::Prompt> Prompts() {
  std::vector<rlhf::v1::Prompt> prompts(kPrompts);
  for (int i = 0; i < kPrompts; ++i) {
    prompts[i].set_index(i);
    prompts[i].set_text("p" + std::to_string(i));
    for (int64_t id : {1, 5 + i % 20, 6}) prompts[i].add_tokens(id);
  }
  return prompts;
}

// A real learner (tiny policy, vocabulary 40, context 64) with version 0 published.
class LearnerEnv {
 public:
  LearnerEnv() {
    const rlhf::v1::LearnerConfig config = Config();
    auto policy = model::CreateRandomLlama(learner::testing::TinyPolicyConfig(), /*seed=*/3);
    EXPECT_TRUE(policy.ok());
    auto critic = learner::PpoTrainer::CriticFromPolicy(*policy);
    auto trainer = learner::PpoTrainer::Create(
        *policy, *critic, learner::PpoTrainerOptionsFromConfig(config.ppo(), config.sampling()));
    EXPECT_TRUE(trainer.ok()) << trainer.status();
    auto learner = learner::Learner::Create(config, std::move(*trainer), Prompts(), registry_);
    EXPECT_TRUE(learner.ok()) << learner.status();
    learner_ = std::move(*learner);
    grpc_util::ServerOptions options;
    options.shutdown_grace = absl::Milliseconds(200);
    options.max_message_bytes = kMaxMessageBytes;
    auto server = grpc_util::Server::Start(options, {learner_->service()}, {"rlhf.v1.Learner"});
    EXPECT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    stub_ = rlhf::v1::Learner::NewStub(grpc_util::CreateChannel(server_->address()));
    learner_->Start([](const nlohmann::json&) {});  // publishes version 0
  }
  ~LearnerEnv() {
    learner_->Stop();
    server_->Shutdown();
  }

  // A well-formed trajectory of no lease, with a fresh id.
  Trajectory Good() {
    Trajectory t;
    t.set_id(absl::StrCat("good/", next_id_++));
    t.set_worker_id("w");
    t.set_prompt_index(0);
    for (int64_t id : {1, 5, 6}) t.add_prompt_tokens(id);
    for (int64_t id : {7, 8, 9}) {
      t.add_response_tokens(id);
      t.add_behaviour_logprobs(-1.0f);
      t.add_ref_logprobs(-1.5f);
    }
    t.set_reward(0.5f);
    return t;
  }

  // A lease of one prompt; a well-formed trajectory for it.
  Trajectory Leased(rlhf::v1::PromptLease* lease_out = nullptr) {
    rlhf::v1::LeasePromptsRequest request;
    request.set_worker_id("w");
    request.set_max_prompts(1);
    rlhf::v1::PromptLease lease;
    ::grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    const ::grpc::Status s = stub_->LeasePrompts(&ctx, request, &lease);
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(lease.prompts_size(), 1);
    Trajectory t = Good();
    t.set_lease_id(lease.lease_id());
    t.set_prompt_index(lease.prompts(0).index());
    t.clear_prompt_tokens();
    for (int64_t id : lease.prompts(0).tokens()) t.add_prompt_tokens(id);
    if (lease_out != nullptr) *lease_out = lease;
    return t;
  }

  // Pushes `trajectories` on one stream; the last ack's outcome and message, or the stream's
  // status when no ack came.
  Answer Push(const std::vector<Trajectory>& trajectories) {
    ::grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    auto stream = stub_->PushTrajectories(&ctx);
    std::vector<Ack> acks;
    std::thread reader([&] {
      Ack ack;
      while (stream->Read(&ack)) acks.push_back(ack);
    });
    for (const Trajectory& t : trajectories) {
      if (!stream->Write(t)) break;
    }
    stream->WritesDone();
    reader.join();
    const ::grpc::Status status = stream->Finish();
    if (!status.ok() || acks.empty()) {
      return {absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code())),
              status.error_message()};
    }
    return {Ack::Outcome_Name(acks.back().outcome()), acks.back().message()};
  }
  Answer Push(const Trajectory& t) { return Push(std::vector<Trajectory>{t}); }

  template <typename Request, typename Response>
  static Answer Call(::grpc::Status (rlhf::v1::Learner::Stub::*rpc)(::grpc::ClientContext*,
                                                                    const Request&, Response*),
                     rlhf::v1::Learner::Stub* stub, const Request& request) {
    ::grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    Response response;
    const ::grpc::Status s = (stub->*rpc)(&ctx, request, &response);
    return {absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code())),
            s.error_message()};
  }

  Answer GetWeights(int64_t version) {
    ::grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    rlhf::v1::GetWeightsRequest request;
    request.set_version(version);
    auto reader = stub_->GetWeights(&ctx, request);
    rlhf::v1::WeightChunk chunk;
    while (reader->Read(&chunk)) {
    }
    const ::grpc::Status s = reader->Finish();
    return {absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code())),
            s.error_message()};
  }

  learner::Learner& learner() { return *learner_; }
  rlhf::v1::Learner::Stub* stub() { return stub_.get(); }

 private:
  prometheus::Registry registry_;
  std::unique_ptr<learner::Learner> learner_;
  std::unique_ptr<grpc_util::Server> server_;
  std::unique_ptr<rlhf::v1::Learner::Stub> stub_;
  int next_id_ = 0;
};

using LearnerCase = Case<LearnerEnv>;

// A row that pushes one well-formed trajectory of no lease after `mutate`.
LearnerCase Bad(std::string id, std::string input, std::string code, std::string needle,
                std::function<void(Trajectory*)> mutate) {
  return {std::move(id), std::move(input), std::move(code), std::move(needle),
          [mutate](LearnerEnv& env) {
            Trajectory t = env.Good();
            mutate(&t);
            return env.Push(t);
          }};
}
// The same for a trajectory of a real lease of one prompt.
LearnerCase BadLeased(std::string id, std::string input, std::string code, std::string needle,
                      std::function<void(Trajectory*)> mutate) {
  return {std::move(id), std::move(input), std::move(code), std::move(needle),
          [mutate](LearnerEnv& env) {
            Trajectory t = env.Leased();
            mutate(&t);
            return env.Push(t);
          }};
}

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

const std::vector<LearnerCase> kLearnerCases = RegisterCases<LearnerEnv>(
    "learner RPCs",
    {
        Bad("trajectory-nan-behaviour-logprob", "behaviour_logprobs[1] is NaN", "INVALID",
            "behaviour_logprobs[1]", [](Trajectory* t) { t->set_behaviour_logprobs(1, kNaN); }),
        Bad("trajectory-inf-ref-logprob", "ref_logprobs[0] is -Inf", "INVALID", "ref_logprobs[0]",
            [](Trajectory* t) { t->set_ref_logprobs(0, -kInf); }),
        Bad("trajectory-positive-logprob", "behaviour_logprobs[2] = 0.5 (a probability above 1)",
            "INVALID", "behaviour_logprobs[2]",
            [](Trajectory* t) { t->set_behaviour_logprobs(2, 0.5f); }),
        Bad("trajectory-nan-reward", "reward is NaN", "INVALID", "reward",
            [](Trajectory* t) { t->set_reward(kNaN); }),
        Bad("trajectory-inf-reward", "reward is +Inf", "INVALID", "reward",
            [](Trajectory* t) { t->set_reward(kInf); }),
        Bad("trajectory-token-outside-vocab", "response_tokens[0] = 999 in a vocabulary of 40",
            "INVALID", "response_tokens[0] = 999",
            [](Trajectory* t) { t->set_response_tokens(0, 999); }),
        Bad("trajectory-negative-token", "prompt_tokens[1] = -1", "INVALID", "prompt_tokens[1]",
            [](Trajectory* t) { t->set_prompt_tokens(1, -1); }),
        Bad("trajectory-logprobs-length-mismatch", "4 behaviour_logprobs for 3 response tokens",
            "INVALID", "behaviour_logprobs has 4 entries",
            [](Trajectory* t) { t->add_behaviour_logprobs(-1.0f); }),
        Bad("trajectory-ref-logprobs-missing", "no ref_logprobs for 3 response tokens", "INVALID",
            "ref_logprobs has 0 entries", [](Trajectory* t) { t->clear_ref_logprobs(); }),
        Bad("trajectory-empty-response", "no response tokens (nor log-probs)", "INVALID",
            "response_tokens is empty",
            [](Trajectory* t) {
              t->clear_response_tokens();
              t->clear_behaviour_logprobs();
              t->clear_ref_logprobs();
            }),
        Bad("trajectory-empty-prompt", "no prompt tokens", "INVALID", "prompt_tokens is empty",
            [](Trajectory* t) { t->clear_prompt_tokens(); }),
        Bad("trajectory-longer-than-context", "3 + 62 tokens for a context of 64", "INVALID",
            "exceed max_seq_len 64",
            [](Trajectory* t) {
              for (int i = 0; i < 59; ++i) {
                t->add_response_tokens(7);
                t->add_behaviour_logprobs(-1.0f);
                t->add_ref_logprobs(-1.0f);
              }
            }),
        Bad("trajectory-empty-id", "no id", "INVALID", "id is empty",
            [](Trajectory* t) { t->clear_id(); }),
        Bad("trajectory-negative-version", "policy_version = -3", "INVALID", "policy_version = -3",
            [](Trajectory* t) { t->set_policy_version(-3); }),
        Bad("trajectory-future-version", "policy_version = 5 while the learner published 0",
            "INVALID", "policy_version = 5 is newer",
            [](Trajectory* t) { t->set_policy_version(5); }),
        Bad("trajectory-lease-never-granted", "lease_id L999999, above every lease granted",
            "INVALID", "lease_id L999999 was never granted",
            [](Trajectory* t) { t->set_lease_id("L999999"); }),
        Bad("trajectory-lease-malformed", "lease_id \"lease-7\" (not L<n>)", "INVALID",
            "lease_id \"lease-7\"", [](Trajectory* t) { t->set_lease_id("lease-7"); }),
        BadLeased("trajectory-prompt-index-outside-pool", "prompt_index 999 of a pool of 32",
                  "INVALID", "prompt_index = 999",
                  [](Trajectory* t) { t->set_prompt_index(999); }),
        BadLeased("trajectory-prompt-tokens-not-leased",
                  "prompt_tokens other than those of the leased prompt", "INVALID",
                  "prompt_tokens (3 tokens) differ",
                  [](Trajectory* t) { t->set_prompt_tokens(1, 39); }),
        {"trajectory-expired-lease",
         "a trajectory of a lease that expired before it arrived (late completion)", "ACCEPTED",
         "",
         [](LearnerEnv& env) {
           const Trajectory t = env.Leased();
           absl::SleepFor(absl::Seconds(kLeaseSeconds * 1.5));  // past the lease's deadline
           const int64_t late = env.learner().prompt_stats().late_completions;
           Answer a = env.Push(t);
           EXPECT_EQ(env.learner().prompt_stats().late_completions, late + 1);
           return a;
         }},
        {"trajectory-resent-same-contents",
         "the same trajectory twice (a worker resending after a lost ack)", "DUPLICATE",
         "already received",
         [](LearnerEnv& env) {
           const Trajectory t = env.Good();
           return env.Push(std::vector<Trajectory>{t, t});
         }},
        {"trajectory-same-id-other-contents",
         "a second trajectory under an id already accepted, with another reward", "DUPLICATE",
         "already received",
         [](LearnerEnv& env) {
           const Trajectory t = env.Good();
           Trajectory other = t;
           other.set_reward(-7.0f);
           return env.Push(std::vector<Trajectory>{t, other});
         }},
        Bad("trajectory-oversized-message", "a 2 MiB trajectory; the server takes 1 MiB messages",
            "RESOURCE_EXHAUSTED", "larger than max",
            [](Trajectory* t) { t->set_worker_id(std::string(2 << 20, 'w')); }),
        {"lease-zero-prompts", "LeasePrompts with max_prompts 0", "INVALID_ARGUMENT",
         "max_prompts must be in [1, 16]",
         [](LearnerEnv& env) {
           rlhf::v1::LeasePromptsRequest r;
           return LearnerEnv::Call(&rlhf::v1::Learner::Stub::LeasePrompts, env.stub(), r);
         }},
        {"lease-above-max-batch", "LeasePrompts with max_prompts 17 above limits.max_batch 16",
         "INVALID_ARGUMENT", "max_prompts must be in [1, 16]",
         [](LearnerEnv& env) {
           rlhf::v1::LeasePromptsRequest r;
           r.set_max_prompts(17);
           return LearnerEnv::Call(&rlhf::v1::Learner::Stub::LeasePrompts, env.stub(), r);
         }},
        {"return-unknown-lease", "ReturnLease of a lease never granted", "NOT_FOUND",
         "lease L424242",
         [](LearnerEnv& env) {
           rlhf::v1::ReturnLeaseRequest r;
           r.set_lease_id("L424242");
           return LearnerEnv::Call(&rlhf::v1::Learner::Stub::ReturnLease, env.stub(), r);
         }},
        {"weights-future-version", "GetWeights of version 9 while 0 is the newest",
         "FAILED_PRECONDITION", "version 9",
         [](LearnerEnv& env) { return env.GetWeights(9); }},
        {"weights-negative-version", "GetWeights of version -1", "INVALID_ARGUMENT",
         "version -1 is negative", [](LearnerEnv& env) { return env.GetWeights(-1); }},
    });

class LearnerRpcTest : public RowsWith<LearnerCase, LearnerEnv> {};

TEST_P(LearnerRpcTest, AnsweredAndTheLearnerGoesOn) {
  const LearnerCase& c = GetParam();
  const learner::TrajectoryLedger before = env().learner().ledger();
  ExpectAnswer(c, c.run(env()));
  // It keeps serving: a good trajectory is accepted on a new stream.
  const Answer next = env().Push(env().Good());
  EXPECT_EQ(next.code, "ACCEPTED") << next.message;
  // Nothing accepted is lost: every accepted trajectory is queued or in the batch the loop is
  // gathering (consumed; no step ran: the batch of 64 is never filled), and the ledger's
  // identities hold.
  const learner::TrajectoryLedger l = env().learner().ledger();
  EXPECT_GE(l.accepted, before.accepted + 1);
  EXPECT_EQ(l.stale_at_pop, 0);
  EXPECT_EQ(l.accepted, l.consumed + l.queued);
  EXPECT_EQ(env().learner().trainer().step(), 0);
  EXPECT_EQ(l.received,
            l.accepted + l.duplicate + l.invalid + l.stale_on_arrival + l.parked + l.cancelled);
}

INSTANTIATE_TEST_SUITE_P(Catalogue, LearnerRpcTest, ::testing::ValuesIn(kLearnerCases),
                         CaseName<LearnerEnv>);

}  // namespace
}  // namespace rlhf::bad_inputs
