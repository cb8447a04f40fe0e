// Files: positional reads from a file of known size, and the one durable writer: crash-safe
// whole-file writes (temp file beside the target, fsync, rename, fsync of the directory), for
// every file another process or a later run reads (checkpoints, pointers, reports, data).
#ifndef RLHF_COMMON_FILE_FILE_H_
#define RLHF_COMMON_FILE_FILE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rlhf::file {

// A read-only file opened once; reads at explicit offsets. Thread-compatible (const methods may
// be called concurrently: pread does not move a shared cursor).
class RandomAccessFile {
 public:
  // Opens `path`. Returns NotFound when it does not exist, InvalidArgument when it is a
  // directory, other errno-derived codes otherwise; messages name `path`.
  static absl::StatusOr<std::unique_ptr<RandomAccessFile>> Open(const std::string& path);

  RandomAccessFile(const RandomAccessFile&) = delete;
  RandomAccessFile& operator=(const RandomAccessFile&) = delete;
  ~RandomAccessFile();

  const std::string& path() const { return path_; }
  // Size of the file in bytes when it was opened.
  uint64_t size() const { return size_; }

  // Reads exactly `n` bytes at `offset` into `dst`. Returns InvalidArgument when the range is
  // beyond the end of the file, errno-derived errors on I/O failure.
  absl::Status Read(uint64_t offset, uint64_t n, void* dst) const;

 private:
  RandomAccessFile(std::string path, int fd, uint64_t size)
      : path_(std::move(path)), fd_(fd), size_(size) {}

  const std::string path_;
  const int fd_;
  const uint64_t size_;
};

// Writes a file so that `path` either keeps its old content or gets the complete new content,
// never a prefix: data goes to a temporary file beside `path`, which Commit() fsyncs and renames
// over `path`. A writer destroyed without Commit() removes its temporary file. Not thread-safe.
class AtomicFileWriter {
 public:
  static absl::StatusOr<std::unique_ptr<AtomicFileWriter>> Create(const std::string& path);

  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;
  ~AtomicFileWriter();

  absl::Status Append(const void* data, uint64_t n);
  // REQUIRES: called at most once, after the last Append().
  absl::Status Commit();

 private:
  AtomicFileWriter(std::string path, std::string temp_path, int fd)
      : path_(std::move(path)), temp_path_(std::move(temp_path)), fd_(fd) {}

  const std::string path_;
  const std::string temp_path_;
  int fd_;  // -1 once closed
  bool committed_ = false;
};

// Returns the whole content of `path` (NotFound when missing; messages name `path`).
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// Replaces `path` with `contents` through an AtomicFileWriter.
absl::Status WriteFileAtomically(const std::string& path, std::string_view contents);

// Returns true when `path` names an existing regular file.
bool IsRegularFile(const std::string& path);

}  // namespace rlhf::file

#endif  // RLHF_COMMON_FILE_FILE_H_
