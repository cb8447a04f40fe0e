// Test helpers: where the read-only fixtures in ../shared live, and reading them.
#ifndef RLHF_COMMON_TESTING_SHARED_DATA_H_
#define RLHF_COMMON_TESTING_SHARED_DATA_H_

#include <cstdlib>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

namespace rlhf::testing {

// Returns the absolute path of `relative` inside the shared fixtures directory (env
// RLHF_SHARED_DIR, set by ctest; falls back to ../shared from the working directory).
inline std::string SharedPath(const std::string& relative) {
  const char* dir = std::getenv("RLHF_SHARED_DIR");
  return std::string(dir != nullptr ? dir : "../shared") + "/" + relative;
}

// Parses a JSON fixture; aborts the test binary with the path when it is unreadable.
inline nlohmann::json LoadSharedJson(const std::string& relative) {
  std::ifstream in(SharedPath(relative));
  if (!in) {
    std::fprintf(stderr, "cannot open fixture %s\n", SharedPath(relative).c_str());
    std::abort();
  }
  return nlohmann::json::parse(in);
}

}  // namespace rlhf::testing

#endif  // RLHF_COMMON_TESTING_SHARED_DATA_H_
