// Shared by the fuzz targets (tests/fuzz/README.md): the readers under test take paths, so a
// target writes its input to a file of its own process first.
#ifndef RLHF_TESTS_FUZZ_FUZZ_UTIL_H_
#define RLHF_TESTS_FUZZ_FUZZ_UTIL_H_

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace rlhf::fuzz {

// Writes `data` to "$TMPDIR/rlhf_fuzz_<pid><suffix>" (the same file on every call of a process)
// and returns its path; aborts if it cannot (the fuzzer reports that as a crash of the set-up).
inline std::string WriteInput(const uint8_t* data, size_t size, const char* suffix) {
  const char* tmp = std::getenv("TMPDIR");
  const std::string path = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                           "/rlhf_fuzz_" + std::to_string(getpid()) + suffix;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) std::abort();
  if (size > 0 && std::fwrite(data, 1, size, f) != size) std::abort();
  if (std::fclose(f) != 0) std::abort();
  return path;
}

// Splits an input into parts at a 4-byte separator, so that a target can take several
// messages from one input.
inline std::vector<std::string> SplitInput(const uint8_t* data, size_t size) {
  static constexpr char kSep[] = "\xff\xfe\xfd\xfc";
  std::vector<std::string> parts;
  const std::string s(reinterpret_cast<const char*>(data), size);
  size_t at = 0;
  while (true) {
    const size_t next = s.find(kSep, at, 4);
    if (next == std::string::npos) {
      parts.push_back(s.substr(at));
      return parts;
    }
    parts.push_back(s.substr(at, next - at));
    at = next + 4;
  }
}

}  // namespace rlhf::fuzz

#endif  // RLHF_TESTS_FUZZ_FUZZ_UTIL_H_
