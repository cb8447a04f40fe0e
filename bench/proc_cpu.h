// CPU time of a process and of each of its threads, read from /proc (Linux), for benchmarks
// that report the cores a process used over a timed window: (end - start) / wall seconds.
// Clock-tick resolution (usually 10 ms per thread). Functions, no state; thread-safe.
#ifndef RLHF_BENCH_PROC_CPU_H_
#define RLHF_BENCH_PROC_CPU_H_

#include <dirent.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

namespace rlhf::bench {

// User + system CPU seconds of a process (all threads, living and exited) and of each of its
// living threads, keyed by thread id.
struct ProcessCpu {
  double seconds = 0;
  std::map<int, std::pair<std::string, double>> threads;  // tid -> (name, seconds)
};

namespace internal {

// Parses a /proc .../stat file into (comm, utime + stime seconds); false when unreadable.
inline bool ReadStat(const std::string& path, std::string* comm, double* seconds) {
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t open = text.find('('), close = text.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open) return false;
  *comm = text.substr(open + 1, close - open - 1);
  std::istringstream rest(text.substr(close + 1));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  // After the comm: field 3 (state) ... field 14 (utime), 15 (stime).
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  *seconds = static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
  return true;
}

}  // namespace internal

// Returns the CPU times of `pid` now (zeros for a process that is gone).
inline ProcessCpu ReadProcessCpu(pid_t pid) {
  ProcessCpu cpu;
  const std::string base = "/proc/" + std::to_string(pid);
  std::string comm;
  internal::ReadStat(base + "/stat", &comm, &cpu.seconds);
  if (DIR* dir = opendir((base + "/task").c_str())) {
    while (dirent* e = readdir(dir)) {
      if (e->d_name[0] == '.') continue;
      double seconds = 0;
      if (internal::ReadStat(base + "/task/" + e->d_name + "/stat", &comm, &seconds)) {
        cpu.threads[std::stoi(e->d_name)] = {comm, seconds};
      }
    }
    closedir(dir);
  }
  return cpu;
}

// Returns {thread name: {"threads": n, "cores": CPU seconds / wall}} over [start, end] for the
// threads living at `end` (a thread born in between counts from zero; one that exited is only
// in the process total).
inline nlohmann::json CoresByThread(const ProcessCpu& start, const ProcessCpu& end,
                                    double wall_seconds) {
  std::map<std::string, std::pair<int, double>> by_name;
  for (const auto& [tid, thread] : end.threads) {
    auto it = start.threads.find(tid);
    const double before = it == start.threads.end() ? 0 : it->second.second;
    auto& [count, seconds] = by_name[thread.first];
    ++count;
    seconds += thread.second - before;
  }
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [name, v] : by_name) {
    out[name] = {{"threads", v.first}, {"cores", v.second / wall_seconds}};
  }
  return out;
}

}  // namespace rlhf::bench

#endif  // RLHF_BENCH_PROC_CPU_H_
