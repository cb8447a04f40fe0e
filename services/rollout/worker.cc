#include "services/rollout/worker.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/grpc/server.h"
#include "common/grpc/status_util.h"
#include "common/logging/logging.h"
#include "common/status/status_macros.h"
#include "rlhf/v1/services.grpc.pb.h"
#include "services/rollout/backoff.h"
#include "services/rollout/rollout_service.h"
#include "services/rollout/trajectories.h"
#include "services/rollout/trajectory_pusher.h"
#include "services/rollout/weight_fetch.h"
#include "services/rollout/worker_metrics.h"
#include "common/status/exception.h"

namespace rlhf::rollout {
namespace {

using rlhf::v1::PromptLease;
using rlhf::v1::Trajectory;

bool IsRetryable(const absl::Status& s) {
  return absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s) || absl::IsResourceExhausted(s);
}

// Logs the 1st, 2nd, 4th, 8th, ... failure of a retried call.
bool WorthLogging(int attempt) { return (attempt & (attempt - 1)) == 0; }

class Worker final : public RolloutWorker {
 public:
  Worker(const WorkerOptions& options, std::shared_ptr<PolicyHolder> policy,
         std::unique_ptr<tokenizer::Tokenizer> tokenizer, prometheus::Registry& registry,
         int generated_log)
      : options_(options),
        policy_(std::move(policy)),
        tokenizer_(std::move(tokenizer)),
        metrics_(registry),
        learner_channel_(
            grpc_util::CreateChannel(options.learner_address, options.max_message_bytes)),
        learner_(rlhf::v1::Learner::NewStub(learner_channel_)),
        reward_(rlhf::v1::Reward::NewStub(
            grpc_util::CreateChannel(options.reward_address, options.max_message_bytes))),
        reference_(rlhf::v1::Reference::NewStub(
            grpc_util::CreateChannel(options.reference_address, options.max_message_bytes))),
        pusher_(PusherOptions{options.max_unacked, options.initial_backoff, options.max_backoff},
                learner_channel_, &metrics_),
        generated_log_(generated_log),
        next_seq_(static_cast<uint64_t>(absl::ToUnixMicros(absl::Now()))) {}

  ~Worker() override {
    Stop(absl::ZeroDuration());
    if (generated_log_ >= 0) close(generated_log_);
  }

  void Start() override ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (started_ || stopped_) return;
    started_ = true;
    pusher_.Start();
    loop_ = std::thread([this] { Loop(); });
  }

  void Stop(absl::Duration grace) override ABSL_LOCKS_EXCLUDED(mu_);
  WorkerStats Stats() const override ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // Registers a call's context so that Stop() can cancel it; once Stop() cancels, new calls
  // are cancelled at once.
  class ScopedCall {
   public:
    ScopedCall(Worker* worker, ::grpc::ClientContext* context) : w_(worker), c_(context) {
      absl::MutexLock lock(&w_->mu_);
      if (w_->cancel_calls_) c_->TryCancel();
      w_->calls_.insert(c_);
    }
    ~ScopedCall() {
      absl::MutexLock lock(&w_->mu_);
      w_->calls_.erase(c_);
    }

   private:
    Worker* const w_;
    ::grpc::ClientContext* const c_;
  };

  void Loop();
  bool WaitForLearner();
  absl::Status RunLease(const PromptLease& lease);
  absl::Status SyncWeights(int64_t version);
  absl::Status FetchWeights(int64_t version, codec::NamedTensors* tensors, int64_t* fetched);
  absl::StatusOr<std::vector<Trajectory>> Generate(const PromptLease& lease);
  absl::Status Score(const PromptLease& lease, std::vector<Trajectory>* trajectories);
  void ReturnLease(const PromptLease& lease, const std::string& reason);
  template <typename Fn>
  absl::Status CallWithRetry(const std::string& call, Fn&& fn);

  bool stopping() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return stop_requested_;
  }
  // Sleeps `d` unless Stop() is called; returns false when stopping.
  bool SleepUnlessStopping(absl::Duration d) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return !mu_.AwaitWithTimeout(absl::Condition(&stop_requested_), d);
  }
  std::chrono::system_clock::time_point CallDeadline() const {
    return absl::ToChronoTime(absl::Now() + options_.rpc_deadline);
  }

  // Constant after construction.
  const WorkerOptions options_;
  const std::shared_ptr<PolicyHolder> policy_;
  const std::unique_ptr<tokenizer::Tokenizer> tokenizer_;
  WorkerMetrics metrics_;
  const std::shared_ptr<::grpc::Channel> learner_channel_;
  const std::unique_ptr<rlhf::v1::Learner::Stub> learner_;
  const std::unique_ptr<rlhf::v1::Reward::Stub> reward_;
  const std::unique_ptr<rlhf::v1::Reference::Stub> reference_;
  TrajectoryPusher pusher_;  // thread-safe

  // Appends "<id>\n" to the generated log (when there is one). One write(2) per line: a line
  // is in the file, whole, before the trajectory can reach the learner.
  absl::Status LogGenerated(const std::string& id) {
    if (generated_log_ < 0) return absl::OkStatus();
    const std::string line = id + "\n";
    if (write(generated_log_, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
      return absl::InternalError(
          absl::StrCat("cannot append to ", options_.generated_log, ": ", std::strerror(errno)));
    }
    return absl::OkStatus();
  }

  const int generated_log_;  // -1 = none
  uint64_t next_seq_;        // loop thread only
  std::thread loop_;         // Start() and Stop() only

  mutable absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  bool loop_done_ ABSL_GUARDED_BY(mu_) = false;
  bool cancel_calls_ ABSL_GUARDED_BY(mu_) = false;
  std::set<::grpc::ClientContext*> calls_ ABSL_GUARDED_BY(mu_);
  int64_t generated_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t weight_syncs_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t leases_returned_ ABSL_GUARDED_BY(mu_) = 0;
};

void Worker::Stop(absl::Duration grace) {
  const absl::Time deadline = absl::Now() + grace;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
    stop_requested_ = true;
    if (!started_) return;
    // The batch in progress may finish (its lease is returned if it cannot) ...
    mu_.AwaitWithDeadline(absl::Condition(&loop_done_), deadline);
  }
  // ... and its trajectories be acked, within the grace; then whatever is left is cancelled.
  const bool all_acked = pusher_.WaitForAcks(deadline);
  {
    absl::MutexLock lock(&mu_);
    cancel_calls_ = true;
    for (::grpc::ClientContext* call : calls_) call->TryCancel();
  }
  pusher_.Stop(std::max(deadline - absl::Now(), absl::Milliseconds(200)));
  loop_.join();
  const WorkerStats s = Stats();
  LOG(INFO) << "rollout worker " << options_.worker_id << " stopped: " << s.generated
            << " trajectories generated, " << s.acked_accepted << " accepted, " << s.unacked
            << " unacked" << (all_acked ? "" : " at the end of the grace period");
}

WorkerStats Worker::Stats() const {
  const PushStats p = pusher_.Stats();
  WorkerStats s;
  s.acked_accepted = p.acked_accepted;
  s.acked_duplicate = p.acked_duplicate;
  s.acked_invalid = p.acked_invalid;
  s.acked_stale = p.acked_stale;
  s.resent = p.resent;
  s.unacked = p.unacked;
  s.policy_version = policy_->version();
  absl::MutexLock lock(&mu_);
  s.generated = generated_;
  s.weight_syncs = weight_syncs_;
  s.leases_returned = leases_returned_;
  return s;
}

template <typename Fn>
absl::Status Worker::CallWithRetry(const std::string& call, Fn&& fn) {
  Backoff backoff(options_.initial_backoff, options_.max_backoff);
  for (int attempt = 1;; ++attempt) {
    absl::Status s;
    {
      ::grpc::ClientContext context;
      context.set_deadline(CallDeadline());
      ScopedCall registered(this, &context);
      s = grpc_util::FromGrpcStatus(fn(&context));
    }
    if (s.ok() || !IsRetryable(s) || stopping()) return s;
    metrics_.Retry(call).Increment();
    if (WorthLogging(attempt)) LOG(WARNING) << call << " failed (attempt " << attempt << "): " << s;
    if (!SleepUnlessStopping(backoff.Next())) return s;
  }
}

void Worker::Loop() {
  if (WaitForLearner()) {
    Backoff backoff(options_.initial_backoff, options_.max_backoff);
    while (!stopping()) {
      rlhf::v1::LeasePromptsRequest request;
      request.set_worker_id(options_.worker_id);
      request.set_max_prompts(options_.batch_prompts);
      PromptLease lease;
      const absl::Time asked = absl::Now();
      absl::Status s = CallWithRetry("lease", [&](::grpc::ClientContext* context) {
        lease.Clear();
        return learner_->LeasePrompts(context, request, &lease);
      });
      if (s.ok() && lease.prompts().empty()) {
        // The learner has enough prompts out (or the run is ending): ask again soon, without
        // growing the wait, so that the worker is back as soon as the learner needs data.
        VLOG(1) << "empty lease: the learner has enough prompts out, or the run is ending";
        SleepUnlessStopping(options_.initial_backoff);
        metrics_.lease_wait_seconds.Increment(absl::ToDoubleSeconds(absl::Now() - asked));
        continue;
      } else if (s.ok()) {
        metrics_.lease_wait_seconds.Increment(absl::ToDoubleSeconds(absl::Now() - asked));
        s = RunLease(lease);
        if (s.ok()) {
          backoff.Reset();
          continue;
        }
      } else if (!stopping()) {
        LOG(ERROR) << "LeasePrompts failed: " << s;
      }
      SleepUnlessStopping(backoff.Next());
    }
  }
  absl::MutexLock lock(&mu_);
  loop_done_ = true;
}

bool Worker::WaitForLearner() {
  Backoff backoff(options_.initial_backoff, options_.max_backoff);
  for (int attempt = 1; !stopping(); ++attempt) {
    // Each attempt waits (wait-for-ready) for up to one backoff step, so Stop() is noticed
    // within max_backoff.
    absl::Status s = grpc_util::WaitForServing(learner_channel_, "rlhf.v1.Learner",
                                               absl::Now() + backoff.Next());
    if (s.ok()) {
      LOG(INFO) << "learner at " << options_.learner_address << " is serving";
      return true;
    }
    metrics_.Retry("wait_learner").Increment();
    if (WorthLogging(attempt)) {
      LOG(INFO) << "waiting for the learner at " << options_.learner_address << ": " << s;
    }
  }
  return false;
}

void Worker::ReturnLease(const PromptLease& lease, const std::string& reason) {
  {
    absl::MutexLock lock(&mu_);
    ++leases_returned_;
  }
  metrics_.LeaseReturned(reason).Increment();
  rlhf::v1::ReturnLeaseRequest request;
  request.set_lease_id(lease.lease_id());
  request.set_worker_id(options_.worker_id);
  rlhf::v1::ReturnLeaseResponse response;
  // Best effort, not cancelled by Stop() and bounded: an expired lease returns its prompts
  // anyway.
  ::grpc::ClientContext context;
  context.set_deadline(
      absl::ToChronoTime(absl::Now() + std::min(options_.rpc_deadline, absl::Seconds(1))));
  const ::grpc::Status s = learner_->ReturnLease(&context, request, &response);
  LOG(INFO) << "returned lease " << lease.lease_id() << " (" << reason << ", "
            << lease.prompts_size()
            << " prompts): " << (s.ok() ? "ok" : grpc_util::FromGrpcStatus(s).ToString());
}

absl::Status Worker::RunLease(const PromptLease& lease) {
  auto give_back = [&](absl::Status s, const std::string& reason) {
    ReturnLease(lease, stopping() ? "stopping" : reason);
    return s;
  };
  if (stopping()) return give_back(absl::CancelledError("stopping"), "stopping");
  if (lease.policy_version() != policy_->version()) {
    absl::Status s = SyncWeights(lease.policy_version());
    if (absl::IsFailedPrecondition(s) || absl::IsNotFound(s)) {
      LOG(INFO) << "policy version " << lease.policy_version() << " unavailable: " << s;
      return give_back(s, "weights_unavailable");
    }
    if (!s.ok()) {
      if (!stopping())
        LOG(ERROR) << "syncing policy version " << lease.policy_version() << ": " << s;
      return give_back(s, "weights_invalid");
    }
  }
  if (stopping()) return give_back(absl::CancelledError("stopping"), "stopping");
  absl::StatusOr<std::vector<Trajectory>> trajectories = Generate(lease);
  if (!trajectories.ok()) {
    LOG(ERROR) << "generating lease " << lease.lease_id() << ": " << trajectories.status();
    return give_back(trajectories.status(), "invalid");
  }
  if (absl::Status s = Score(lease, &*trajectories); !s.ok()) {
    if (!stopping()) LOG(ERROR) << "scoring lease " << lease.lease_id() << ": " << s;
    return give_back(s, absl::IsInvalidArgument(s) ? "invalid" : "error");
  }
  for (Trajectory& t : *trajectories) {
    const int64_t tokens = t.response_tokens_size();
    if (absl::Status s = LogGenerated(t.id()); !s.ok()) return give_back(s, "error");
    if (absl::Status s = pusher_.Push(std::move(t)); !s.ok()) return give_back(s, "stopping");
    metrics_.trajectories_generated.Increment();
    metrics_.tokens_generated.Increment(tokens);
    absl::MutexLock lock(&mu_);
    ++generated_;
  }
  return absl::OkStatus();
}

absl::Status Worker::SyncWeights(int64_t version) {
  const absl::Time start = absl::Now();
  Backoff backoff(options_.initial_backoff, options_.max_backoff);
  for (int attempt = 1;; ++attempt) {
    codec::NamedTensors tensors;
    int64_t fetched = -1;
    absl::Status s = FetchWeights(version, &tensors, &fetched);
    if (s.ok()) {
      RLHF_RETURN_IF_ERROR(policy_->Install(tensors, fetched));
      metrics_.weight_syncs.Increment();
      metrics_.weight_sync_seconds.Observe(absl::ToDoubleSeconds(absl::Now() - start));
      metrics_.policy_version.Set(fetched);
      absl::MutexLock lock(&mu_);
      ++weight_syncs_;
      LOG(INFO) << "generating with policy version " << fetched;
      return absl::OkStatus();
    }
    // A checksum mismatch is worth another try; a malformed stream is not.
    if (!(IsRetryable(s) || absl::IsDataLoss(s)) || stopping()) return s;
    metrics_.Retry("get_weights").Increment();
    if (WorthLogging(attempt)) LOG(WARNING) << "GetWeights(" << version << "): " << s;
    if (!SleepUnlessStopping(backoff.Next())) return s;
  }
}

absl::Status Worker::FetchWeights(int64_t version, codec::NamedTensors* tensors, int64_t* fetched) {
  ::grpc::ClientContext context;
  context.set_deadline(CallDeadline());
  ScopedCall registered(this, &context);
  // A version of our architecture is at most its float32 size: more is a bad peer.
  return rollout::FetchWeights(*learner_, &context, version, policy_->parameter_bytes(),
                               &metrics_.weight_sync_bytes, tensors, fetched);
}

absl::StatusOr<std::vector<Trajectory>> Worker::Generate(const PromptLease& lease) {
  const PolicyHolder::Policy policy = policy_->Snapshot();  // one version for the batch
  RLHF_ASSIGN_OR_RETURN(std::vector<std::vector<int64_t>> prompts,
                        LeasePromptTokens(lease, tokenizer_.get()));
  const model::SamplingOptions sampling = SamplingOptionsFromProto(lease.sampling());
  std::vector<uint64_t> seeds;
  for (size_t i = 0; i < prompts.size(); ++i) seeds.push_back(sampling.seed + i);
  const absl::Time start = absl::Now();
  // A LibTorch error in generation (out of memory) fails this lease, not the worker.
  RLHF_ASSIGN_OR_RETURN(std::vector<model::GenerationResult> results,
                        status::CatchExceptions("generation", [&] {
                          return policy.engine->Generate(prompts, sampling, seeds);
                        }));
  metrics_.generation_seconds.Observe(absl::ToDoubleSeconds(absl::Now() - start));
  return BuildTrajectories(lease, prompts, results, policy.version, options_.worker_id, &next_seq_);
}

absl::Status Worker::Score(const PromptLease& lease, std::vector<Trajectory>* trajectories) {
  const rlhf::v1::LogProbsRequest ref_request =
      MakeLogProbsRequest(*trajectories, lease.sampling().temperature());
  const rlhf::v1::ScoreRequest reward_request =
      MakeScoreRequest(lease, *trajectories, tokenizer_.get());
  rlhf::v1::LogProbsResponse ref;
  RLHF_RETURN_IF_ERROR(CallWithRetry("reference", [&](::grpc::ClientContext* context) {
    ref.Clear();
    return reference_->LogProbs(context, ref_request, &ref);
  }));
  rlhf::v1::ScoreResponse reward;
  RLHF_RETURN_IF_ERROR(CallWithRetry("reward", [&](::grpc::ClientContext* context) {
    reward.Clear();
    return reward_->Score(context, reward_request, &reward);
  }));
  return AttachScores(ref, reward, trajectories);
}

}  // namespace

absl::Status Validate(const WorkerOptions& o) {
  auto bad = [](const std::string& what) { return absl::InvalidArgumentError("worker: " + what); };
  if (o.learner_address.empty()) return bad("learner address is empty");
  if (o.reward_address.empty()) return bad("reward address is required with a learner");
  if (o.reference_address.empty()) return bad("reference address is required with a learner");
  if (o.worker_id.empty()) return bad("worker_id is empty");
  if (o.batch_prompts < 1)
    return bad(absl::StrCat("batch_prompts must be >= 1, got ", o.batch_prompts));
  if (o.max_unacked < 1) return bad(absl::StrCat("max_unacked must be >= 1, got ", o.max_unacked));
  if (o.rpc_deadline <= absl::ZeroDuration()) return bad("rpc_deadline_seconds must be > 0");
  if (o.initial_backoff <= absl::ZeroDuration() || o.max_backoff < o.initial_backoff) {
    return bad("backoff needs 0 < initial_backoff_seconds <= max_backoff_seconds");
  }
  if (o.max_message_bytes < 1) return bad("max_message_bytes must be >= 1");
  return absl::OkStatus();
}

WorkerOptions WorkerOptionsFromConfig(const rlhf::v1::WorkerConfig& c) {
  WorkerOptions o;
  o.learner_address = c.learner();
  o.reward_address = c.reward();
  o.reference_address = c.reference();
  o.worker_id = c.worker_id();
  o.batch_prompts = c.batch_prompts();
  o.max_unacked = c.max_unacked();
  o.rpc_deadline = absl::Seconds(c.rpc_deadline_seconds());
  o.initial_backoff = absl::Seconds(c.initial_backoff_seconds());
  o.max_backoff = absl::Seconds(c.max_backoff_seconds());
  o.generated_log = c.generated_log();
  return o;
}

absl::StatusOr<std::unique_ptr<RolloutWorker>> RolloutWorker::Create(
    const WorkerOptions& options, std::shared_ptr<PolicyHolder> policy,
    std::unique_ptr<tokenizer::Tokenizer> tokenizer, prometheus::Registry& registry) {
  RLHF_RETURN_IF_ERROR(Validate(options));
  if (policy == nullptr) return absl::InvalidArgumentError("worker: no policy");
  if (tokenizer != nullptr && tokenizer->vocab_size() != policy->config().vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat("worker: tokenizer has ",
                                                   tokenizer->vocab_size(), " tokens, the model ",
                                                   policy->config().vocab_size));
  }
  int generated_log = -1;
  if (!options.generated_log.empty()) {
    generated_log =
        open(options.generated_log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (generated_log < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "worker: cannot open generated_log ", options.generated_log, ": ", std::strerror(errno)));
    }
  }
  try {
    return std::unique_ptr<RolloutWorker>(
        new Worker(options, std::move(policy), std::move(tokenizer), registry, generated_log));
  } catch (const std::exception& e) {  // prometheus-cpp: a clashing metric family
    return absl::InvalidArgumentError(absl::StrCat("worker metrics: ", e.what()));
  }
}

}  // namespace rlhf::rollout
