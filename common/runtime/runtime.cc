#include "common/runtime/runtime.h"

#include <dlfcn.h>
#include <link.h>
#include <malloc.h>
#include <sched.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include <ATen/Parallel.h>
#include <omp.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "common/logging/logging.h"

namespace rlhf::runtime {
namespace {

// Finds the path of the loaded shared object whose file name contains "blas" (LibTorch from
// Debian links libblas.so.3, which update-alternatives points at reference BLAS or OpenBLAS).
int FindBlas(struct dl_phdr_info* info, size_t, void* data) {
  auto* out = static_cast<std::string*>(data);
  const char* name = info->dlpi_name;
  if (name != nullptr && absl::StrContains(name, "blas") && out->empty()) *out = name;
  return 0;
}

}  // namespace

int AllowedCpuCount() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return 1;
  const int n = CPU_COUNT(&set);
  return n > 0 ? n : 1;
}

std::string BlasDescription() {
  std::string path;
  dl_iterate_phdr(FindBlas, &path);
  using ConfigFn = char* (*)();
  auto config = reinterpret_cast<ConfigFn>(dlsym(RTLD_DEFAULT, "openblas_get_config"));
  if (config != nullptr) return absl::StrCat("OpenBLAS ", config(), " (", path, ")");
  if (path.empty()) return "unknown BLAS (no libblas loaded)";
  return absl::StrCat("reference BLAS (", path,
                      "); install libopenblas0-openmp for ~40x faster matmuls");
}

absl::Status InitTorchRuntime(int num_threads) {
  if (num_threads < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("thread count must be >= 0 (0 = from CPU affinity), got ", num_threads));
  }
  // Tensors of a few hundred KB are allocated and freed on every decode step; glibc would serve
  // each with a fresh mmap (and page faults). Keep them on the heap instead.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  // Threads other than main allocate from 64 MB heaps that glibc deletes (munmap) as soon as
  // the heap before has more than M_TOP_PAD free at its end, regardless of M_TRIM_THRESHOLD: a
  // PPO step on a training-loop thread mapped and unmapped heaps every step (120k page faults
  // per 10 s, 1.5x slower than the same step on the main thread). A top pad of a whole heap
  // keeps them. (One arena for all threads, M_ARENA_MAX=1, fixed the step too but cut gRPC's
  // weight transfers to 40%.)
  mallopt(M_TOP_PAD, 64 << 20);
  const int allowed = AllowedCpuCount();
  const int n = num_threads == 0 ? allowed : num_threads;
  at::set_num_threads(n);
  LOG(INFO) << "torch intra-op threads: " << n << " (allowed CPUs: " << allowed
            << "); BLAS: " << BlasDescription();
  return absl::OkStatus();
}

namespace {
int64_t ResidentBytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  long long pages = 0, resident = 0;
  const int n = std::fscanf(f, "%lld %lld", &pages, &resident);
  std::fclose(f);
  return n == 2 ? static_cast<int64_t>(resident) * sysconf(_SC_PAGESIZE) : 0;
}
}  // namespace

ReleasedMemory ReleaseFreeHeapMemory() {
  ReleasedMemory r;
  r.rss_before = ResidentBytes();
  malloc_trim(0);
  r.rss_after = ResidentBytes();
  return r;
}

void MakeThisThreadSerial() {
  // ATen sets each thread's OpenMP thread count from its global one on the thread's first
  // parallel op; run that now so that it does not undo the next line later.
  (void)at::get_num_threads();
  omp_set_num_threads(1);
}

}  // namespace rlhf::runtime
