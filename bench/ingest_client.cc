#include "bench/ingest_client.h"

#include <array>
#include <chrono>
#include <deque>
#include <random>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "bench/bench_util.h"
#include "common/grpc/status_util.h"
#include "common/status/status_macros.h"

namespace rlhf::bench {
namespace {

using rlhf::v1::Ack;
using rlhf::v1::Trajectory;

// Fills the per-trajectory fields of w->next for its sequence number w->sent.
void NextTrajectory(Worker* w, int per_lease) {
  const int64_t seq = w->sent++;
  const LeasedPrompts& lease = w->leases[seq / per_lease];
  const int64_t prompt = lease.prompt_indexes[seq % per_lease];
  Trajectory& t = w->next;
  t.set_id(absl::StrCat(w->id, "/", seq));
  t.set_lease_id(lease.lease_id);
  t.set_prompt_index(prompt);
  *t.mutable_prompt_tokens() = w->prompt_tokens->at(prompt);
}

class PushStream;

// Spreads the writes of all streams evenly over time, `rate` per second from construction on:
// a stream without a token waits in line and the pacer's thread resumes it when one is due
// (every 500 us). Thread-safe.
class Pacer {
 public:
  explicit Pacer(double rate) : rate_(rate), start_(Clock::now()), thread_([this] { Loop(); }) {}
  ~Pacer() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    thread_.join();
  }
  Pacer(const Pacer&) = delete;
  Pacer& operator=(const Pacer&) = delete;

  // Returns true when `s` may write now; otherwise queues it, and the pacer's thread calls
  // s->WriteGranted() later. REQUIRES: `s` lives until then.
  bool TakeOrQueue(PushStream* s) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (waiting_.empty() && granted_ < Due()) {
      ++granted_;
      return true;
    }
    waiting_.push_back(s);
    return false;
  }

 private:
  int64_t Due() const { return static_cast<int64_t>(rate_ * Seconds(start_)); }
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);

  const double rate_;
  const Clock::time_point start_;
  absl::Mutex mu_;
  std::deque<PushStream*> waiting_ ABSL_GUARDED_BY(mu_);
  int64_t granted_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: starts once the fields above are set
};

// One stream of one worker: writes `count` trajectories back to back (or as `pacer` allows,
// when not null; the first write is never held), half-closes, and counts the acks by outcome.
// Reactions run on gRPC's threads; the owner reads the results after `done` is counted down
// (OnDone is the last reaction).
class PushStream final : public ::grpc::ClientBidiReactor<Trajectory, Ack> {
 public:
  PushStream(Worker* worker, int64_t count, int per_lease, Pacer* pacer,
             absl::BlockingCounter* done)
      : worker_(worker), count_(count), per_lease_(per_lease), pacer_(pacer), done_(done) {}

  void Start() {
    context_.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
    worker_->stub->async()->PushTrajectories(&context_, this);
    StartRead(&ack_);
    if (count_ == 0) {
      StartWritesDone();
    } else {
      WriteGranted();
    }
    StartCall();
  }

  // Writes the next trajectory. REQUIRES: no write in flight, written() < count.
  void WriteGranted() {
    NextTrajectory(worker_, per_lease_);
    bytes_ += static_cast<int64_t>(worker_->next.ByteSizeLong());
    ++written_;
    StartWrite(&worker_->next);
  }

  void OnWriteDone(bool ok) override {
    if (ok) WriteNext();  // else the stream is broken: OnDone has its status
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;
    ++outcomes_[ack_.outcome() < kOutcomes ? ack_.outcome() : 0];
    StartRead(&ack_);
  }

  void OnDone(const ::grpc::Status& status) override {
    status_ = status;
    done_->DecrementCount();
  }

  const ::grpc::Status& status() const { return status_; }
  int64_t written() const { return written_; }
  int64_t bytes() const { return bytes_; }
  int64_t outcome(Ack::Outcome o) const { return outcomes_[o]; }

 private:
  static constexpr int kOutcomes = Ack::Outcome_ARRAYSIZE;

  void WriteNext() {
    if (written_ == count_) {
      StartWritesDone();
    } else if (pacer_ == nullptr || pacer_->TakeOrQueue(this)) {
      WriteGranted();
    }
  }

  Worker* const worker_;
  const int64_t count_;
  const int per_lease_;
  Pacer* const pacer_;
  absl::BlockingCounter* const done_;
  ::grpc::ClientContext context_;
  Ack ack_;  // the read buffer
  // Written by the write reactions only, read after OnDone.
  int64_t written_ = 0;
  int64_t bytes_ = 0;
  // Written by the read reactions only, read after OnDone.
  std::array<int64_t, kOutcomes> outcomes_{};
  ::grpc::Status status_;
};

void Pacer::Loop() {
  std::vector<PushStream*> resume;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stop_), absl::Microseconds(500))) return;
      for (const int64_t due = Due(); !waiting_.empty() && granted_ < due; ++granted_) {
        resume.push_back(waiting_.front());
        waiting_.pop_front();
      }
    }
    for (PushStream* s : resume) s->WriteGranted();  // unlocked: StartWrite may call back
    resume.clear();
  }
}

}  // namespace

absl::Status Lease(Worker* w, int64_t total, int per_lease, PromptTokens* tokens) {
  for (int64_t got = 0; got < total;) {
    ::grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    rlhf::v1::LeasePromptsRequest request;
    request.set_worker_id(w->id);
    request.set_max_prompts(per_lease);
    rlhf::v1::PromptLease lease;
    RLHF_RETURN_IF_ERROR(
        grpc_util::FromGrpcStatus(w->stub->LeasePrompts(&context, request, &lease)));
    if (lease.prompts_size() != per_lease) {
      return absl::InternalError(absl::StrCat("lease of ", lease.prompts_size(), " prompts"));
    }
    LeasedPrompts& kept = w->leases.emplace_back();
    kept.lease_id = lease.lease_id();
    for (const rlhf::v1::Prompt& p : lease.prompts()) {
      kept.prompt_indexes.push_back(p.index());
      tokens->try_emplace(p.index(), p.tokens());
    }
    got += lease.prompts_size();
  }
  w->prompt_tokens = tokens;
  return absl::OkStatus();
}

void InitTrajectory(Worker* w, int response_tokens, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> token(3, kIngestVocab - 1);
  std::uniform_real_distribution<float> logprob(-8.f, 0.f);
  Trajectory& t = w->next;
  t.set_worker_id(w->id);
  t.set_policy_version(0);
  for (int i = 0; i < response_tokens; ++i) {
    t.add_response_tokens(token(rng));
    t.add_behaviour_logprobs(logprob(rng));
    t.add_ref_logprobs(logprob(rng));
  }
  t.set_reward(std::uniform_real_distribution<float>(-1.f, 1.f)(rng));
  t.set_finish_reason(rlhf::v1::FINISH_REASON_LENGTH);
}

absl::StatusOr<PhaseResult> RunPhase(std::vector<Worker>& workers, int64_t per_stream,
                                     int per_lease, double rate) {
  absl::BlockingCounter done(static_cast<int>(workers.size()));
  const Clock::time_point start = Clock::now();
  std::vector<std::unique_ptr<PushStream>> streams;
  // Declared after `streams`: its thread is joined (it may still be returning from a stream's
  // last StartWrite) before the streams are destroyed.
  std::unique_ptr<Pacer> pacer;
  if (rate > 0) pacer = std::make_unique<Pacer>(rate);
  for (Worker& w : workers) {
    streams.push_back(std::make_unique<PushStream>(&w, per_stream, per_lease, pacer.get(), &done));
  }
  for (auto& s : streams) s->Start();
  done.Wait();
  PhaseResult r;
  r.seconds = Seconds(start);
  for (const auto& s : streams) {
    if (!s->status().ok()) return grpc_util::FromGrpcStatus(s->status());
    r.written += s->written();
    r.bytes += s->bytes();
    r.accepted += s->outcome(Ack::ACCEPTED);
    r.duplicate += s->outcome(Ack::DUPLICATE);
    r.other +=
        s->outcome(Ack::INVALID) + s->outcome(Ack::STALE) + s->outcome(Ack::OUTCOME_UNSPECIFIED);
  }
  return r;
}

}  // namespace rlhf::bench
