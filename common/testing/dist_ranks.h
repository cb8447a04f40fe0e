// Helpers for tests that run a data-parallel group inside one process: the ranks as threads,
// rendezvousing on a free loopback port.
#ifndef RLHF_COMMON_TESTING_DIST_RANKS_H_
#define RLHF_COMMON_TESTING_DIST_RANKS_H_

#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "absl/time/time.h"
#include "common/dist/process_group.h"
#include "common/process/free_port.h"

namespace rlhf::testing {

using process::FreeLoopbackPort;

// Runs body(rank) for rank in [0, world_size), each in its own thread, and joins them all.
inline void RunRanks(int world_size, const std::function<void(int rank)>& body) {
  std::vector<std::thread> threads;
  threads.reserve(world_size);
  for (int r = 0; r < world_size; ++r) threads.emplace_back(body, r);
  for (std::thread& t : threads) t.join();
}

// Joins rank `rank` of a `world_size` group rendezvousing on 127.0.0.1:`port` (a 30 s timeout);
// nullptr, with a test failure, when that fails.
inline std::unique_ptr<dist::ProcessGroup> JoinGroup(int port, int rank, int world_size) {
  dist::DistOptions o;
  o.master_port = port;
  o.rank = rank;
  o.world_size = world_size;
  o.timeout = absl::Seconds(30);
  auto group = dist::ProcessGroup::Create(o);
  EXPECT_TRUE(group.ok()) << group.status();
  return group.ok() ? std::move(*group) : nullptr;
}

}  // namespace rlhf::testing

#endif  // RLHF_COMMON_TESTING_DIST_RANKS_H_
