// The bad-input catalogue (issue 18): one row per bad input, on every surface a peer, a file or
// a config can reach. A row names a stable kebab-case id (the row of docs/bad-inputs.md), the
// bad input in words, the answer it must get (a canonical status code, or for a trajectory the
// ack outcome) and a substring of the message that names the field or the offset.
//
// Each surface's test file holds its table, runs every row against the real part (servers on
// 127.0.0.1:0, readers on files written into a per-test temp dir) and checks afterwards that the
// part keeps working. Every table is registered here, so that doc_test.cc can check that
// docs/bad-inputs.md lists exactly the catalogue's ids.
#ifndef RLHF_TESTS_BAD_INPUTS_CATALOGUE_H_
#define RLHF_TESTS_BAD_INPUTS_CATALOGUE_H_

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rlhf::bad_inputs {

// What a part answered: a status code name ("INVALID_ARGUMENT", "OK") or an ack outcome
// ("INVALID", "DUPLICATE", "ACCEPTED"), and the message.
struct Answer {
  std::string code;
  std::string message;
};

inline Answer FromStatus(const absl::Status& s) {
  return {absl::StatusCodeToString(s.code()), std::string(s.message())};
}

// One row. `Env` is what the surface's rows run against (a server fixture, a temp dir).
template <typename Env>
struct Case {
  std::string id;      // stable kebab-case id, also the row of docs/bad-inputs.md
  std::string input;   // the bad input, in words
  std::string code;    // the expected Answer::code
  std::string needle;  // the message must contain it (the field or offset); "" only for OK
  std::function<Answer(Env&)> run;  // feeds the bad input to the part and returns its answer
};

template <typename Env>
void PrintTo(const Case<Env>& c, std::ostream* os) {
  *os << c.id;
}

// Every id of every table, with its surface (filled before main by RegisterCases).
inline std::map<std::string, std::string>& CatalogueIds() {
  static auto* ids = new std::map<std::string, std::string>();
  return *ids;
}
// Ids registered twice (a copy-paste slip): doc_test fails on them.
inline std::vector<std::string>& DuplicateIds() {
  static auto* ids = new std::vector<std::string>();
  return *ids;
}

// Registers `cases` under `surface` and returns them (for a namespace-scope table).
template <typename Env>
std::vector<Case<Env>> RegisterCases(const std::string& surface, std::vector<Case<Env>> cases) {
  for (const Case<Env>& c : cases) {
    if (!CatalogueIds().emplace(c.id, surface).second) DuplicateIds().push_back(c.id);
  }
  return cases;
}

// gtest's name for a row: the id with '-' as '_'.
template <typename Env>
std::string CaseName(const ::testing::TestParamInfo<Case<Env>>& info) {
  return absl::StrReplaceAll(info.param.id, {{"-", "_"}});
}

// Checks `got` against the row: the code, and the needle in the message.
template <typename Env>
void ExpectAnswer(const Case<Env>& c, const Answer& got) {
  EXPECT_EQ(got.code, c.code) << c.id << ": " << got.message;
  if (c.code != "OK" && c.code != "ACCEPTED") {
    ASSERT_FALSE(c.needle.empty()) << c.id << ": a rejection must name the field or offset";
  }
  EXPECT_THAT(got.message, ::testing::HasSubstr(c.needle)) << c.id;
  // RLHF_BAD_INPUTS_DUMP=<file>: appends "id<TAB>surface<TAB>input<TAB>code<TAB>message" per
  // row, the material of docs/bad-inputs.md's rows.
  if (const char* dump = std::getenv("RLHF_BAD_INPUTS_DUMP"); dump != nullptr) {
    std::ofstream(dump, std::ios::app) << c.id << "\t" << CatalogueIds()[c.id] << "\t" << c.input
                                       << "\t" << got.code << "\t" << got.message << "\n";
  }
}

// A fresh directory under the test temp dir, removed with the object.
class TempDir {
 public:
  explicit TempDir(const std::string& name)
      : path_(absl::StrCat(::testing::TempDir(), "/bad_inputs_", getpid(), "_", name)) {
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // Writes `bytes` to `name` in the directory; returns its path.
  std::string Write(const std::string& name, const std::string& bytes) const {
    const std::string p = path_ + "/" + name;
    std::filesystem::create_directories(std::filesystem::path(p).parent_path());
    std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
    return p;
  }

 private:
  std::string path_;
};

// A TempDir named after the running test suite.
class SuiteTempDir : public TempDir {
 public:
  SuiteTempDir() : TempDir(::testing::UnitTest::GetInstance()->current_test_suite()->name()) {}
};

// A parameterised suite over `Case` rows whose runs share one `Env` (a server, a directory),
// made before the suite's first row and destroyed after its last: `env()` in a TEST_P.
template <typename Case, typename Env>
class RowsWith : public ::testing::TestWithParam<Case> {
 protected:
  static void SetUpTestSuite() { env_ = new Env(); }
  static void TearDownTestSuite() {
    delete env_;
    env_ = nullptr;
  }
  static Env& env() { return *env_; }

 private:
  static inline Env* env_ = nullptr;
};

// Little-endian bytes of `value` (the binary formats are little-endian).
template <typename T>
std::string Bytes(T value) {
  return std::string(reinterpret_cast<const char*>(&value), sizeof(value));
}

}  // namespace rlhf::bad_inputs

#endif  // RLHF_TESTS_BAD_INPUTS_CATALOGUE_H_
