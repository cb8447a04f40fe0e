// Child processes for the local launcher and the multi-process tests: start a program with
// arguments, read its stdout line by line (blocking, no polling), send signals, reap it.
// Not thread-safe; one owner.
#ifndef RLHF_COMMON_PROCESS_SUBPROCESS_H_
#define RLHF_COMMON_PROCESS_SUBPROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace rlhf::process {

struct SubprocessOptions {
  /// Where the child's stderr goes (appended); empty = inherit ours.
  std::string stderr_path;
  /// Variables added to (or replacing those of) our environment in the child: NAME -> value.
  std::vector<std::pair<std::string, std::string>> env;
};

class Subprocess {
 public:
  // Starts argv[0] (looked up in PATH when it has no '/') with its stdout on a pipe to us. The
  // child gets SIGTERM when the calling thread ends (PR_SET_PDEATHSIG): start children from a
  // thread that lives as long as they should, and none is left behind by a killed launcher.
  // Errors: InvalidArgument for an empty argv, Internal when fork/exec set-up fails (a
  // program that cannot be executed exits with status 127).
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(const std::vector<std::string>& argv,
                                                           const SubprocessOptions& options = {});
  // Kills (SIGKILL) and reaps a child that is still running.
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }

  // Returns the next line of the child's stdout (without '\n'), waiting up to `timeout`.
  // Errors: DeadlineExceeded, OutOfRange at end of output (the child closed stdout or exited).
  absl::StatusOr<std::string> ReadLine(absl::Duration timeout);

  // Sends `sig` (no-op once reaped).
  void Signal(int sig);

  // Waits up to `timeout` for the child to exit; returns its exit code (128 + signal number
  // when killed by a signal). DeadlineExceeded if it is still running.
  absl::StatusOr<int> Wait(absl::Duration timeout);

 private:
  Subprocess(pid_t pid, int stdout_fd) : pid_(pid), stdout_fd_(stdout_fd) {}

  const pid_t pid_;
  const int stdout_fd_;
  std::string buffer_;  // read but not yet returned
  bool reaped_ = false;
  int exit_code_ = -1;
};

}  // namespace rlhf::process

#endif  // RLHF_COMMON_PROCESS_SUBPROCESS_H_
