// The learner side of bench/ingest_bench.cc, run in a process of its own (the bench re-executes
// itself with --serve) so that its CPU time can be read exactly from /proc/<pid>/stat.
//
// The process is set up as services/learner/main.cc sets the learner up
// (runtime::InitTorchRuntime's malloc tuning, a serial main thread; done by the bench's main).
// What runs is the learner's ingest path and nothing else: a real learner::LearnerService over
// a real PromptPool, TrajectoryQueue and WeightStore (version 0 published, a one-tensor
// "policy"), served by grpc_util::ServeUntilSignal as services/learner/main.cc serves it
// (health service, per-RPC metrics interceptor), and one consumer thread that runs the
// learner loop's data half (Learner::Loop): PopBatch until a batch is full with
// ServeWaitingLeases and the metrics syncs after each pop, then, in place of the PPO step and
// the publication, the batch is dropped and the queue's taken count released.
//
// Stdout protocol (read by the parent with process::Subprocess):
//   line 1: the gRPC port; line 2: the metrics port (-1: off)
//   after SIGTERM: one JSON object with the queue and prompt ledgers and the consumer's counts.
#ifndef RLHF_BENCH_INGEST_LEARNER_H_
#define RLHF_BENCH_INGEST_LEARNER_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "services/learner/trajectory_journal.h"

namespace rlhf::bench {

struct IngestLearnerOptions {
  /// TrajectoryQueue capacity (LearnerConfig.max_queue).
  int queue_capacity = 4096;
  /// Trajectories the consumer collects per "step" (ppo.batch_size).
  int batch_size = 256;
  /// Prompts in the pool, each of prompt_tokens random token ids.
  int num_prompts = 1024;
  int prompt_tokens = 64;
  /// Most prompts per lease (PromptPoolOptions.max_lease_prompts).
  int max_lease_prompts = 256;
  /// Token ids are in [0, vocab_size); prompt + response <= max_seq_len.
  int64_t vocab_size = 32000;
  int64_t max_seq_len = 1024;
  /// The learner's TrajectoryJournal (as with checkpoint_dir set); empty = none.
  std::string journal;
  /// Its LearnerConfig.journal_sync.
  learner::TrajectoryJournal::Sync journal_sync = learner::TrajectoryJournal::Sync::kNone;
};

// Serves until SIGINT/SIGTERM, then prints the ledger line and returns.
// REQUIRES: process::BlockTerminationSignals() was called before any thread started.
absl::Status ServeIngestLearner(const IngestLearnerOptions& options);

}  // namespace rlhf::bench

#endif  // RLHF_BENCH_INGEST_LEARNER_H_
