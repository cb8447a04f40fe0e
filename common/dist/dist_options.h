// Where a data-parallel job's process sits in its group, and how it finds the others: the
// torchrun contract (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK), so that a job
// launched by torchrun, a Slurm/Kubernetes wrapper that sets the same variables, or by hand
// joins the same way. Read once in main() (or by a job runner) and passed down; nothing else
// reads the environment.
#ifndef RLHF_COMMON_DIST_DIST_OPTIONS_H_
#define RLHF_COMMON_DIST_DIST_OPTIONS_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace rlhf::dist {

struct DistOptions {
  // --- Membership
  /// This process's index in [0, world_size); rank 0 hosts the rendezvous store.
  int rank = 0;
  /// Number of processes; 1 = single process (no communication at all).
  int world_size = 1;
  /// Index among the processes of this host (picks the CUDA device); informational otherwise.
  int local_rank = 0;

  // --- Rendezvous
  /// Host of rank 0's TCP store (every rank connects to it; rank 0 binds master_port).
  std::string master_addr = "127.0.0.1";
  /// Port of the store, in [1, 65535].
  int master_port = 29500;
  /// Network interface Gloo binds (GLOO_SOCKET_IFNAME); empty = the loopback interface when
  /// master_addr is loopback, else the one this host's name resolves to.
  std::string gloo_interface;

  // --- Failure detection
  /// How long joining the group, and each collective, may wait for the other ranks before it
  /// fails (a rank that died or never came turns into an error after this, not a hang).
  absl::Duration timeout = absl::Seconds(60);

  // --- Backend
  /// Use NCCL for CUDA tensors when this build has it and CUDA is available; Gloo otherwise
  /// (CPU tensors always go through Gloo).
  bool use_nccl = true;
};

// OK, or InvalidArgument naming the first bad field.
absl::Status Validate(const DistOptions& options);

// Looks up an environment variable: its value, or nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

// Options from the torchrun variables, read through `lookup`:
//  - none of RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set: a single process (rank 0 of 1);
//  - otherwise RANK and WORLD_SIZE are required (integers, 0 <= RANK < WORLD_SIZE), and with
//    WORLD_SIZE > 1 so are MASTER_ADDR and MASTER_PORT (an integer port in [1, 65535]);
//  - LOCAL_RANK (default 0) and GLOO_SOCKET_IFNAME are optional.
// A variable that is present but malformed, or a set that is incomplete or inconsistent, is
// InvalidArgument with the variable's name and value in the message. `timeout` and `use_nccl`
// keep their defaults (they are the caller's choice, not the launcher's).
absl::StatusOr<DistOptions> DistOptionsFromEnv(const EnvLookup& lookup);
// The same, from this process's environment.
absl::StatusOr<DistOptions> DistOptionsFromEnv();

}  // namespace rlhf::dist

#endif  // RLHF_COMMON_DIST_DIST_OPTIONS_H_
