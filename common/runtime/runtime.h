// Process-wide LibTorch runtime set-up: intra-op thread count from the CPUs this process may run
// on (sched_getaffinity, so cgroup/taskset limits are honoured) and a description of the BLAS
// library actually loaded, which every process logs at start.
#ifndef RLHF_COMMON_RUNTIME_RUNTIME_H_
#define RLHF_COMMON_RUNTIME_RUNTIME_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace rlhf::runtime {

// Returns the number of CPUs in this process's affinity mask (>= 1).
int AllowedCpuCount();

// Returns a one-line description of the BLAS library loaded into this process, e.g.
// "OpenBLAS 0.3.21 ... (/usr/lib/.../openblas-openmp/libblas.so.3)", or "reference BLAS (...)".
std::string BlasDescription();

// Sets torch's intra-op thread count to `num_threads`, or to AllowedCpuCount() when it is 0, and
// logs the thread count and BLAS in use. Returns InvalidArgument for a negative count.
// Call once at process start, before any torch work.
absl::Status InitTorchRuntime(int num_threads);

// Makes torch ops on the calling thread single-threaded, leaving other threads at the count of
// InitTorchRuntime. For services whose main thread only loads models while other threads (a
// training loop, a batcher) compute: libgomp spins while waiting for work only when a process
// has no more OpenMP threads than CPUs, and sleeps after ~100 spins otherwise, which costs
// every parallel region a futex wake-up (a PPO step measured 1.5x slower). A second thread pool
// on the main thread is what pushed services over. Call after InitTorchRuntime.
void MakeThisThreadSerial();

// Gives the free memory of every malloc arena back to the system (malloc_trim). The settings
// InitTorchRuntime makes keep freed memory for the next step's tensors (up to M_TRIM_THRESHOLD
// in the main heap, M_TOP_PAD per thread heap), so that a long-running process's resident size
// otherwise climbs to the high-water mark of every arena. Call it after rare, large transient
// work (a checkpoint); returns the bytes resident before and after.
struct ReleasedMemory {
  int64_t rss_before = 0;
  int64_t rss_after = 0;
};
ReleasedMemory ReleaseFreeHeapMemory();

}  // namespace rlhf::runtime

#endif  // RLHF_COMMON_RUNTIME_RUNTIME_H_
