#include "common/file/file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace rlhf::file {
namespace {

namespace fs = std::filesystem;

class FileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("file_test_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  // The names in the folder: a write leaves the target and nothing else.
  std::vector<std::string> Names() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename());
    return names;
  }
  fs::path dir_;
};

TEST_F(FileTest, WriteReplacesWholeAndLeavesNoTemporaryFile) {
  const std::string path = dir_ / "latest";
  ASSERT_TRUE(WriteFileAtomically(path, "step-1\n").ok());
  ASSERT_TRUE(WriteFileAtomically(path, "step-22\n").ok());
  auto text = ReadFileToString(path);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, "step-22\n");
  EXPECT_EQ(Names(), std::vector<std::string>{"latest"});
  ASSERT_TRUE(WriteFileAtomically(path, "").ok());
  EXPECT_EQ(*ReadFileToString(path), "");
}

TEST_F(FileTest, AbandonedWriterKeepsTheOldContent) {
  const std::string path = dir_ / "report.json";
  ASSERT_TRUE(WriteFileAtomically(path, "old").ok());
  {
    auto writer = AtomicFileWriter::Create(path);
    ASSERT_TRUE(writer.ok()) << writer.status();
    ASSERT_TRUE((*writer)->Append("new and longer", 14).ok());
  }  // destroyed without Commit()
  EXPECT_EQ(*ReadFileToString(path), "old");
  EXPECT_EQ(Names(), std::vector<std::string>{"report.json"});
}

TEST_F(FileTest, ErrorsNameThePath) {
  const std::string missing_dir = dir_ / "no" / "such" / "file";
  absl::Status s = WriteFileAtomically(missing_dir, "x");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find(missing_dir), absl::string_view::npos) << s;
  auto read = ReadFileToString(dir_ / "absent");
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(IsRegularFile(dir_));
}

}  // namespace
}  // namespace rlhf::file
