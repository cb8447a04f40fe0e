// What every benchmark program shares: one JSON result line at a time on stdout, and wall time.
#ifndef RLHF_BENCH_BENCH_UTIL_H_
#define RLHF_BENCH_BENCH_UTIL_H_

#include <chrono>
#include <cstdio>

#include <nlohmann/json.hpp>

namespace rlhf::bench {

using Clock = std::chrono::steady_clock;

// Prints `line` as one line of JSON and flushes, so results survive a later crash.
inline void Print(const nlohmann::json& line) {
  std::printf("%s\n", line.dump().c_str());
  std::fflush(stdout);
}

// Seconds since `start`.
inline double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace rlhf::bench

#endif  // RLHF_BENCH_BENCH_UTIL_H_
