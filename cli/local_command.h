// `rlhf local --config FILE`: the whole PPO loop on one machine as separate processes on
// loopback — reward, reference, learner and N rollout workers — with ports from the OS,
// readiness from the gRPC health service, one progress line per PPO step, each process's log in
// the run directory, and a clean stop of every child on Ctrl-C, on the end of the run or on any
// child's failure (then the exit status is non-zero and the failing child's log tail is shown).
//
// Rollout workers are elastic: SIGUSR1 adds one, SIGUSR2 stops the newest one gracefully (it
// hands back its lease and waits for its acks), and a worker killed by a signal is replaced by a
// new one (a worker that exits with an error fails the run, as any other child).
//
// Run directory layout: <name>.json (each process's config), <name>.log (its stderr),
// steps.jsonl (the learner's events), checkpoints/ (unless learner.checkpoint_dir is set),
// prometheus_targets.json (every child's metrics endpoint, for Prometheus file_sd).
#ifndef RLHF_CLI_LOCAL_COMMAND_H_
#define RLHF_CLI_LOCAL_COMMAND_H_

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "absl/status/status.h"

namespace rlhf::cli {

struct LocalArgs {
  std::string config;                  // LocalConfig, YAML or JSON
  std::vector<std::string> overrides;  // --set path.to.field=value
};

// Adds the subcommand to `app`; parsed values land in `args`.
CLI::App* AddLocalCommand(CLI::App& app, LocalArgs& args);

// Runs it. Progress on stdout, diagnostics on stderr. Errors: InvalidArgument for a bad config,
// Cancelled on SIGINT/SIGTERM, Aborted when a child fails, Unavailable when one does not start.
absl::Status RunLocal(const LocalArgs& args);

}  // namespace rlhf::cli

#endif  // RLHF_CLI_LOCAL_COMMAND_H_
