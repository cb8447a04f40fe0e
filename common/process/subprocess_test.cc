#include "common/process/subprocess.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace rlhf::process {
namespace {

TEST(SubprocessTest, ReadsLinesAndExitCode) {
  auto p = Subprocess::Start({"sh", "-c", "echo one; echo two; exit 3"}, {});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*(*p)->ReadLine(absl::Seconds(10)), "one");
  EXPECT_EQ(*(*p)->ReadLine(absl::Seconds(10)), "two");
  EXPECT_EQ(*(*p)->Wait(absl::Seconds(10)), 3);
}

// Dead, or a zombie nobody reaps (PID 1 of a container may not).
bool Gone(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;
  const size_t close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'Z';
}

// A launcher killed with SIGKILL leaves no child running: each gets SIGTERM from the kernel.
TEST(SubprocessTest, ChildOfAKilledParentIsTerminated) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t launcher = fork();
  ASSERT_GE(launcher, 0);
  if (launcher == 0) {
    close(fds[0]);
    auto child = Subprocess::Start({"sleep", "60"}, {});
    const pid_t pid = child.ok() ? (*child)->pid() : -1;
    if (write(fds[1], &pid, sizeof pid) != sizeof pid) _exit(1);
    pause();
    _exit(0);
  }
  close(fds[1]);
  pid_t child = -1;
  ASSERT_EQ(read(fds[0], &child, sizeof child), static_cast<ssize_t>(sizeof child));
  close(fds[0]);
  ASSERT_GT(child, 0);
  EXPECT_FALSE(Gone(child));
  ASSERT_EQ(kill(launcher, SIGKILL), 0);
  ASSERT_EQ(waitpid(launcher, nullptr, 0), launcher);
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (!Gone(child) && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_TRUE(Gone(child)) << "pid " << child << " outlived its launcher";
  if (!Gone(child)) kill(child, SIGKILL);
}

}  // namespace
}  // namespace rlhf::process
