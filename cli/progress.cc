#include "cli/progress.h"

#include <unistd.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"

namespace rlhf::cli {
namespace {

std::string Clock(double seconds) {
  if (!(seconds >= 0) || seconds > 1e7) return "?";
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  return absl::StrFormat("%d:%02d:%02d", s / 3600, (s / 60) % 60, s % 60);
}

}  // namespace

Progress::Progress(std::string what, int64_t total, absl::Duration line_every)
    : what_(std::move(what)),
      total_(total),
      line_every_(line_every),
      tty_(isatty(fileno(stderr)) != 0),
      start_(absl::Now()),
      last_print_(absl::InfinitePast()) {}

void Progress::Update(int64_t done, const std::string& detail) {
  if (start_done_ < 0) {
    start_done_ = done > 0 ? done - 1 : 0;  // a resumed job's rate counts from where it began
  }
  done_ = done;
  const absl::Time now = absl::Now();
  const bool due = tty_ ? now - last_print_ >= absl::Milliseconds(200)
                        : now - last_print_ >= line_every_;
  if (!due && done < total_) return;
  last_print_ = now;
  Print(done, detail, false);
}

void Progress::Finish(const std::string& detail) {
  Print(done_, detail, true);
}

void Progress::Print(int64_t done, const std::string& detail, bool final) {
  const double elapsed = absl::ToDoubleSeconds(absl::Now() - start_);
  const double rate = elapsed > 0 ? static_cast<double>(done - std::max<int64_t>(0, start_done_)) / elapsed : 0;
  const double eta = rate > 0 ? static_cast<double>(total_ - done) / rate : -1;
  const double frac = total_ > 0 ? static_cast<double>(done) / static_cast<double>(total_) : 1;
  std::string line;
  if (tty_) {
    const int width = 24;
    const int filled = static_cast<int>(frac * width);
    line = absl::StrCat("\r", what_, " [", std::string(filled, '#'),
                        std::string(width - filled, ' '), "] ");
  } else {
    line = absl::StrCat(what_, ": ");
  }
  absl::StrAppend(&line, absl::StrFormat("%d/%d (%.0f%%) %.2f/s elapsed %s ETA %s", done, total_,
                                         100 * frac, rate, Clock(elapsed), final ? "0:00:00" : Clock(eta)));
  if (!detail.empty()) absl::StrAppend(&line, "  ", detail);
  if (tty_) {
    absl::StrAppend(&line, "\033[K", final ? "\n" : "");
  } else {
    absl::StrAppend(&line, "\n");
  }
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
}

}  // namespace rlhf::cli
