// A loopback TCP port for a rendezvous (a data-parallel group's store) picked before the
// processes that use it start.
#ifndef RLHF_COMMON_PROCESS_FREE_PORT_H_
#define RLHF_COMMON_PROCESS_FREE_PORT_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace rlhf::process {

// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, read back, closed), or 0
// if none could be bound. Another process may take it in between; callers accept that race.
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

}  // namespace rlhf::process

#endif  // RLHF_COMMON_PROCESS_FREE_PORT_H_
