// Helpers for tests that run a data-parallel group inside one process: the ranks as threads,
// rendezvousing on a free loopback port.
#ifndef RLHF_COMMON_TESTING_DIST_RANKS_H_
#define RLHF_COMMON_TESTING_DIST_RANKS_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "absl/time/time.h"
#include "common/dist/process_group.h"

namespace rlhf::testing {

// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, read back, closed), or 0
// if none could be bound. Another process may take it in between; tests accept that race.
inline int FreeLoopbackPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

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
