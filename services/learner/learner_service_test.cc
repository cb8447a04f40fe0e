// The learner over real gRPC on 127.0.0.1:0: leases, the trajectory stream with its acks,
// dedup and backpressure, weights, version watching, checkpoints, and the equivalence of a PPO
// run fed over the wire with the same steps run in one process.
#include <filesystem>
#include <thread>

#include "absl/synchronization/notification.h"
#include "common/codec/weight_chunks.h"
#include "common/grpc/server.h"
#include "gtest/gtest.h"
#include "services/learner/learner.h"
#include "services/learner/ppo_test_util.h"

namespace rlhf::learner {
namespace {

using rlhf::v1::Ack;

PpoTrainerOptions TrainerOptions(const rlhf::v1::LearnerConfig& config) {
  return PpoTrainerOptionsFromConfig(config.ppo(), config.sampling());
}

rlhf::v1::LearnerConfig Config(int batch, int steps) {
  rlhf::v1::LearnerConfig c;
  c.mutable_ppo()->set_batch_size(batch);
  c.mutable_ppo()->set_minibatch_size(batch / 2);
  c.mutable_ppo()->set_learning_rate(3e-3);
  c.mutable_ppo()->set_critic_learning_rate(3e-3);
  c.mutable_sampling()->set_max_new_tokens(8);
  c.set_total_steps(steps);
  c.set_max_queue(batch);
  return c;
}

std::unique_ptr<PpoTrainer> NewTrainer(const rlhf::v1::LearnerConfig& config) {
  auto policy = model::CreateRandomLlama(testing::TinyPolicyConfig(), /*seed=*/3);
  EXPECT_TRUE(policy.ok());
  auto critic = PpoTrainer::CriticFromPolicy(*policy);
  EXPECT_TRUE(critic.ok());
  auto trainer = PpoTrainer::Create(*policy, *critic, TrainerOptions(config));
  EXPECT_TRUE(trainer.ok()) << trainer.status();
  return std::move(*trainer);
}

std::vector<rlhf::v1::Prompt> Prompts(int n) {
  std::vector<rlhf::v1::Prompt> prompts(n);
  for (int i = 0; i < n; ++i) {
    prompts[i].set_index(i);
    prompts[i].set_text("p" + std::to_string(i));
    for (int64_t id : {1, 5 + i % 20, 6}) prompts[i].add_tokens(id);
  }
  return prompts;
}

double MaxDifference(const std::vector<std::pair<std::string, torch::Tensor>>& a,
                     const std::vector<std::pair<std::string, torch::Tensor>>& b) {
  EXPECT_EQ(a.size(), b.size());
  double max = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    max = std::max(max, (a[i].second - b[i].second).abs().max().item<double>());
  }
  return max;
}

// A learner serving on 127.0.0.1:0, with a client stub and the loop's events.
class LearnerFixture {
 public:
  explicit LearnerFixture(const rlhf::v1::LearnerConfig& config,
                          std::unique_ptr<PpoTrainer> trainer = nullptr) {
    if (!trainer) trainer = NewTrainer(config);
    auto learner = Learner::Create(config, std::move(trainer), Prompts(32), registry_);
    EXPECT_TRUE(learner.ok()) << learner.status();
    learner_ = std::move(*learner);
    grpc_util::ServerOptions options;
    options.shutdown_grace = absl::Milliseconds(200);
    auto server = grpc_util::Server::Start(options, {learner_->service()}, {"rlhf.v1.Learner"});
    EXPECT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    stub_ = rlhf::v1::Learner::NewStub(grpc_util::CreateChannel(server_->address()));
  }
  ~LearnerFixture() {
    learner_->Stop();
    server_->Shutdown();
  }

  void Start() {
    learner_->Start([this](const nlohmann::json& event) {
      absl::MutexLock lock(&mu_);
      events_.push_back(event);
      if (event["event"] == "done") done_.Notify();
    });
  }

  // Writes `trajectories` on one stream, half-closes, and returns the acks.
  std::vector<Ack> Push(const std::vector<rlhf::v1::Trajectory>& trajectories) {
    ::grpc::ClientContext ctx;
    auto stream = stub_->PushTrajectories(&ctx);
    std::vector<Ack> acks;
    std::thread reader([&] {
      Ack ack;
      while (stream->Read(&ack)) acks.push_back(ack);
    });
    for (const auto& t : trajectories) EXPECT_TRUE(stream->Write(t));
    stream->WritesDone();
    reader.join();
    EXPECT_TRUE(stream->Finish().ok());
    return acks;
  }

  Learner& learner() { return *learner_; }
  rlhf::v1::Learner::Stub& stub() { return *stub_; }
  absl::Notification& done() { return done_; }
  std::vector<nlohmann::json> events() {
    absl::MutexLock lock(&mu_);
    return events_;
  }

 private:
  prometheus::Registry registry_;
  std::unique_ptr<Learner> learner_;
  std::unique_ptr<grpc_util::Server> server_;
  std::unique_ptr<rlhf::v1::Learner::Stub> stub_;
  absl::Mutex mu_;
  std::vector<nlohmann::json> events_ ABSL_GUARDED_BY(mu_);
  absl::Notification done_;
};

TEST(LearnerServiceTest, PpoOverGrpcEqualsTheSameStepsInOneProcess) {
  const rlhf::v1::LearnerConfig config = Config(/*batch=*/8, /*steps=*/2);
  auto reference = NewTrainer(config);
  auto trajectories = testing::SampleTrajectories(reference->policy(), 16, 8, /*seed=*/5,
                                                  /*favoured_token=*/7);
  // In one process: two steps on the two halves.
  ASSERT_TRUE(reference->Step({trajectories.begin(), trajectories.begin() + 8}).ok());
  ASSERT_TRUE(reference->Step({trajectories.begin() + 8, trajectories.end()}).ok());

  // Over gRPC: the same trajectories in the same order on one stream.
  LearnerFixture f(config);
  f.Start();
  std::vector<Ack> acks = f.Push(trajectories);
  ASSERT_TRUE(f.done().WaitForNotificationWithTimeout(absl::Seconds(60)));
  ASSERT_EQ(acks.size(), 16u);
  for (const Ack& ack : acks) EXPECT_EQ(ack.outcome(), Ack::ACCEPTED) << ack.message();
  ASSERT_TRUE(f.learner().Wait().ok());
  EXPECT_EQ(f.learner().trainer().step(), 2);
  EXPECT_LE(MaxDifference(f.learner().trainer().PolicyParameters(), reference->PolicyParameters()),
            1e-5);
  const TrajectoryLedger ledger = f.learner().ledger();
  EXPECT_EQ(ledger.received, 16);
  EXPECT_EQ(ledger.accepted, 16);
  EXPECT_EQ(ledger.consumed, 16);
  auto events = f.events();
  ASSERT_EQ(events.size(), 3u);  // two steps and "done"
  EXPECT_EQ(events[1]["step"], 2);
  EXPECT_EQ(events[2]["event"], "done");
}

TEST(LearnerServiceTest, LeasesCarryPromptsSamplingAndVersionAndCanBeReturned) {
  rlhf::v1::LearnerConfig config = Config(4, 1);
  config.mutable_sampling()->set_temperature(0.7);
  LearnerFixture f(config);
  f.Start();  // publishes version 0
  rlhf::v1::LeasePromptsRequest request;
  request.set_worker_id("w1");
  request.set_max_prompts(3);
  rlhf::v1::PromptLease lease;
  ::grpc::ClientContext ctx;
  ASSERT_TRUE(f.stub().LeasePrompts(&ctx, request, &lease).ok());
  EXPECT_EQ(lease.prompts_size(), 3);
  EXPECT_EQ(lease.policy_version(), 0);
  EXPECT_FLOAT_EQ(lease.sampling().temperature(), 0.7f);
  EXPECT_EQ(lease.sampling().max_new_tokens(), 8);
  EXPECT_GT(lease.prompts(0).tokens_size(), 0);

  rlhf::v1::ReturnLeaseRequest ret;
  ret.set_lease_id(lease.lease_id());
  rlhf::v1::ReturnLeaseResponse returned;
  ::grpc::ClientContext ctx2;
  ASSERT_TRUE(f.stub().ReturnLease(&ctx2, ret, &returned).ok());
  EXPECT_EQ(returned.returned_prompts(), 3);
  ::grpc::ClientContext ctx3;
  EXPECT_EQ(f.stub().ReturnLease(&ctx3, ret, &returned).error_code(), ::grpc::NOT_FOUND);

  request.set_max_prompts(0);
  ::grpc::ClientContext ctx4;
  EXPECT_EQ(f.stub().LeasePrompts(&ctx4, request, &lease).error_code(), ::grpc::INVALID_ARGUMENT);
}

TEST(LearnerServiceTest, LeasesBeyondTheGateWaitForRoomInOrder) {
  // max_policy_lag 0: one batch (4 prompts) in flight at a time.
  rlhf::v1::LearnerConfig config = Config(4, 1);
  config.set_max_policy_lag(0);
  LearnerFixture f(config);
  f.Start();
  rlhf::v1::LeasePromptsRequest request;
  request.set_worker_id("w1");
  request.set_max_prompts(4);
  rlhf::v1::PromptLease first;
  ::grpc::ClientContext ctx;
  ASSERT_TRUE(f.stub().LeasePrompts(&ctx, request, &first).ok());
  ASSERT_EQ(first.prompts_size(), 4);

  // The gate is full: the next lease waits instead of coming back empty ...
  absl::Notification answered;
  rlhf::v1::PromptLease second;
  ::grpc::Status second_status;
  std::thread waiter([&] {
    ::grpc::ClientContext wait_ctx;
    wait_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    second_status = f.stub().LeasePrompts(&wait_ctx, request, &second);
    answered.Notify();
  });
  EXPECT_FALSE(answered.WaitForNotificationWithTimeout(absl::Milliseconds(300)));
  // ... until room frees up: returning the first lease answers it with prompts.
  rlhf::v1::ReturnLeaseRequest ret;
  ret.set_lease_id(first.lease_id());
  rlhf::v1::ReturnLeaseResponse returned;
  ::grpc::ClientContext ret_ctx;
  ASSERT_TRUE(f.stub().ReturnLease(&ret_ctx, ret, &returned).ok());
  ASSERT_TRUE(answered.WaitForNotificationWithTimeout(absl::Seconds(30)));
  waiter.join();
  ASSERT_TRUE(second_status.ok()) << second_status.error_message();
  EXPECT_EQ(second.prompts_size(), 4);

  // A lease that finds no room before its deadline is answered empty, in time for the caller.
  ::grpc::ClientContext short_ctx;
  short_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(600));
  rlhf::v1::PromptLease empty;
  ASSERT_TRUE(f.stub().LeasePrompts(&short_ctx, request, &empty).ok());
  EXPECT_EQ(empty.prompts_size(), 0);
}

TEST(LearnerServiceTest, DuplicatesAndInvalidTrajectoriesAreAckedAndCounted) {
  LearnerFixture f(Config(4, 1));
  f.Start();
  auto trajectories = testing::SampleTrajectories(f.learner().trainer().policy(), 3, 8, 1, 7);
  auto invalid = trajectories[1];
  invalid.set_id("w/bad");
  invalid.set_response_tokens(0, 999);
  auto stale = trajectories[2];
  stale.set_id("w/future");
  stale.set_policy_version(-5);  // versions are >= 0 (staleness: trajectory_queue_test)
  std::vector<Ack> acks = f.Push({trajectories[0], trajectories[0], invalid, stale});
  ASSERT_EQ(acks.size(), 4u);
  EXPECT_EQ(acks[0].outcome(), Ack::ACCEPTED);
  EXPECT_EQ(acks[1].outcome(), Ack::DUPLICATE);
  EXPECT_EQ(acks[2].outcome(), Ack::INVALID);
  EXPECT_NE(acks[2].message().find("w/bad"), std::string::npos);
  EXPECT_EQ(acks[3].outcome(), Ack::INVALID);
  const TrajectoryLedger l = f.learner().ledger();
  EXPECT_EQ(l.received, 4);
  EXPECT_EQ(l.accepted, 1);
  EXPECT_EQ(l.duplicate, 1);
  EXPECT_EQ(l.invalid, 2);
}

TEST(LearnerServiceTest, AFullQueueStopsReadingUntilTheTrainerMakesRoom) {
  // Queue of 4, nobody training yet: the 5th trajectory parks and the stream stops reading.
  LearnerFixture f(Config(/*batch=*/4, /*steps=*/2));
  auto trajectories = testing::SampleTrajectories(f.learner().trainer().policy(), 8, 8, 1, 7);
  ::grpc::ClientContext ctx;
  auto stream = f.stub().PushTrajectories(&ctx);
  absl::Mutex mu;
  std::vector<Ack> acks;
  std::thread reader([&] {
    Ack ack;
    while (stream->Read(&ack)) {
      absl::MutexLock lock(&mu);
      acks.push_back(ack);
    }
  });
  for (const auto& t : trajectories) ASSERT_TRUE(stream->Write(t));
  {
    absl::MutexLock lock(&mu);
    auto four = [&] { return acks.size() >= 4; };
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&four), absl::Seconds(30)));
  }
  EXPECT_EQ(f.learner().ledger().accepted, 4);
  // The 5th is read (and parked) after the 4th ack went out: wait for it.
  for (absl::Time until = absl::Now() + absl::Seconds(10);
       f.learner().ledger().parked < 1 && absl::Now() < until;) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(f.learner().ledger().parked, 1);
  {
    absl::MutexLock lock(&mu);
    EXPECT_EQ(acks.size(), 4u);  // nothing more until room is made
  }
  f.Start();  // trains on 4, admits the parked one, reads on
  stream->WritesDone();
  reader.join();
  EXPECT_TRUE(stream->Finish().ok());
  ASSERT_TRUE(f.done().WaitForNotificationWithTimeout(absl::Seconds(60)));
  EXPECT_EQ(acks.size(), 8u);
  for (const Ack& ack : acks) EXPECT_EQ(ack.outcome(), Ack::ACCEPTED);
  const TrajectoryLedger l = f.learner().ledger();
  EXPECT_EQ(l.consumed, 8);
  EXPECT_EQ(l.parked, 0);
}

TEST(LearnerServiceTest, WeightsAndVersionsFollowTheSteps) {
  LearnerFixture f(Config(4, 1));
  f.Start();
  ::grpc::ClientContext watch_ctx;
  rlhf::v1::WatchVersionRequest watch_request;
  auto watch = f.stub().WatchVersion(&watch_ctx, watch_request);
  rlhf::v1::PolicyVersion version;
  ASSERT_TRUE(watch->Read(&version));
  EXPECT_EQ(version.version(), 0);
  EXPECT_GT(version.total_bytes(), 0);

  auto fetch = [&](int64_t v) -> absl::StatusOr<codec::NamedTensors> {
    ::grpc::ClientContext ctx;
    rlhf::v1::GetWeightsRequest request;
    request.set_version(v);
    auto reader = f.stub().GetWeights(&ctx, request);
    codec::WeightAssembler assembler;
    rlhf::v1::WeightChunk chunk;
    while (reader->Read(&chunk)) {
      if (absl::Status s = assembler.Add(chunk); !s.ok()) return s;
    }
    ::grpc::Status status = reader->Finish();
    if (!status.ok())
      return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                          status.error_message());
    return assembler.Finish();
  };
  auto v0 = fetch(0);
  ASSERT_TRUE(v0.ok()) << v0.status();
  const auto initial = f.learner().trainer().PolicyParameters();
  EXPECT_EQ(MaxDifference(*v0, initial), 0.0);

  f.Push(testing::SampleTrajectories(f.learner().trainer().policy(), 4, 8, 1, 7));
  ASSERT_TRUE(f.done().WaitForNotificationWithTimeout(absl::Seconds(60)));
  ASSERT_TRUE(watch->Read(&version));
  EXPECT_EQ(version.version(), 1);
  auto v1 = fetch(1);
  ASSERT_TRUE(v1.ok()) << v1.status();
  EXPECT_EQ(MaxDifference(*v1, f.learner().trainer().PolicyParameters()), 0.0);
  EXPECT_GT(MaxDifference(*v1, initial), 0.0);
  EXPECT_EQ(fetch(7).status().code(), absl::StatusCode::kFailedPrecondition);
  watch_ctx.TryCancel();
  EXPECT_EQ(watch->Finish().error_code(), ::grpc::CANCELLED);
}

TEST(LearnerServiceTest, ACheckpointResumesTheRun) {
  const std::string dir =
      (std::filesystem::temp_directory_path() / "learner_service_test_ckpt").string();
  std::filesystem::remove_all(dir);
  rlhf::v1::LearnerConfig config = Config(4, 1);
  config.set_checkpoint_dir(dir);
  std::vector<std::pair<std::string, torch::Tensor>> after_first;
  int64_t position = 0;
  {
    LearnerFixture f(config);
    f.Start();
    rlhf::v1::LeasePromptsRequest request;
    request.set_max_prompts(5);
    rlhf::v1::PromptLease lease;
    ::grpc::ClientContext ctx;
    ASSERT_TRUE(f.stub().LeasePrompts(&ctx, request, &lease).ok());
    f.Push(testing::SampleTrajectories(f.learner().trainer().policy(), 4, 8, 1, 7));
    ASSERT_TRUE(f.done().WaitForNotificationWithTimeout(absl::Seconds(60)));
    ASSERT_TRUE(f.learner().Wait().ok());
    after_first = f.learner().trainer().PolicyParameters();
    position = f.learner().prompt_stats().position;
  }
  ASSERT_TRUE(std::filesystem::exists(dir + "/latest"));
  ASSERT_TRUE(std::filesystem::exists(dir + "/step-00000001/policy/model.safetensors"));
  config.set_total_steps(2);
  LearnerFixture resumed(config);
  EXPECT_EQ(resumed.learner().trainer().step(), 1);
  EXPECT_EQ(resumed.learner().prompt_stats().position, position);
  EXPECT_EQ(MaxDifference(resumed.learner().trainer().PolicyParameters(), after_first), 0.0);
  std::filesystem::remove_all(dir);
}

TEST(LearnerServiceTest, BadConfigsAreRejectedWithTheFieldNamed) {
  rlhf::v1::LearnerConfig config = Config(4, 1);
  config.mutable_ppo()->set_minibatch_size(3);
  absl::Status s = ValidateLearnerConfig(config);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("minibatch_size"), std::string::npos);
  config = Config(4, 1);
  config.set_max_queue(2);
  EXPECT_NE(ValidateLearnerConfig(config).message().find("max_queue"), std::string::npos);
  prometheus::Registry registry;
  config = Config(4, 1);
  config.mutable_sampling()->set_max_new_tokens(62);  // 3-token prompts + 62 > 64
  auto learner = Learner::Create(config, NewTrainer(config), Prompts(2), registry);
  EXPECT_EQ(learner.status().code(), absl::StatusCode::kInvalidArgument);
  // RLOO / GRPO: whole groups per batch, at least 2 samples, no critic; GAE: no groups.
  config = Config(4, 1);
  config.mutable_ppo()->set_advantage(rlhf::v1::PpoConfig::RLOO);
  EXPECT_NE(ValidateLearnerConfig(config).message().find("group_size >= 2"), std::string::npos);
  config.mutable_ppo()->set_group_size(3);
  EXPECT_NE(ValidateLearnerConfig(config).message().find("multiple of ppo.group_size"),
            std::string::npos);
  config.mutable_ppo()->set_group_size(2);
  EXPECT_TRUE(ValidateLearnerConfig(config).ok()) << ValidateLearnerConfig(config);
  config.set_critic("/models/critic");
  EXPECT_NE(ValidateLearnerConfig(config).message().find("trains no critic"), std::string::npos);
  config = Config(4, 1);
  config.mutable_ppo()->set_group_size(2);
  EXPECT_NE(ValidateLearnerConfig(config).message().find("GAE samples each prompt once"),
            std::string::npos);
}

}  // namespace
}  // namespace rlhf::learner
