// Runs the real `rlhf` binary (RLHF_CLI_PATH) as a user would, capturing exit code, stdout and
// stderr. For the CLI tests.
#ifndef RLHF_TESTS_CLI_RUNNER_H_
#define RLHF_TESTS_CLI_RUNNER_H_

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"

namespace rlhf {

struct Result {
  int exit_code;
  std::string out;  // stdout
  std::string err;  // stderr
};

inline std::string TempPath(const std::string& name) {
  return absl::StrCat(::testing::TempDir(), "/cli_test_", getpid(), "_", name);
}

inline Result RunCli(const std::string& args) {
  const std::string err_path = TempPath("stderr");
  const std::string cmd = absl::StrCat(RLHF_CLI_PATH, " --threads 1 ", args, " 2>", err_path);
  FILE* pipe = popen(cmd.c_str(), "r");
  Result r{-1, "", ""};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) r.out.append(buf, n);
  const int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream err(err_path);
  r.err.assign(std::istreambuf_iterator<char>(err), {});
  return r;
}

}  // namespace rlhf

#endif  // RLHF_TESTS_CLI_RUNNER_H_
