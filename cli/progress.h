// Progress of a long job on stderr: on a terminal a bar redrawn in place with rate and ETA; when
// stderr is not a terminal (CI, logs) a plain line every `line_every` (default 10 s) and at the
// end.
#ifndef RLHF_CLI_PROGRESS_H_
#define RLHF_CLI_PROGRESS_H_

#include <cstdint>
#include <string>

#include "absl/time/time.h"

namespace rlhf::cli {

class Progress {
 public:
  Progress(std::string what, int64_t total, absl::Duration line_every = absl::Seconds(10));
  // `done` units of `total` are done; `detail` (e.g. "loss 0.61 acc 0.70") is shown after.
  void Update(int64_t done, const std::string& detail = "");
  // Prints the final state and a newline.
  void Finish(const std::string& detail = "");

 private:
  void Print(int64_t done, const std::string& detail, bool final);

  std::string what_;
  int64_t total_;
  absl::Duration line_every_;
  bool tty_;
  absl::Time start_;
  absl::Time last_print_;
  int64_t start_done_ = -1;
  int64_t done_ = 0;
};

}  // namespace rlhf::cli

#endif  // RLHF_CLI_PROGRESS_H_
