#include "common/file/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status/status_macros.h"

namespace rlhf::file {
namespace {

absl::Status ErrnoError(int error, const char* action, const std::string& path) {
  return absl::ErrnoToStatus(error, absl::StrCat("cannot ", action, " ", path));
}

std::string DirName(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

absl::StatusOr<std::unique_ptr<RandomAccessFile>> RandomAccessFile::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "open", path);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int error = errno;
    ::close(fd);
    return ErrnoError(error, "stat", path);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  return std::unique_ptr<RandomAccessFile>(
      new RandomAccessFile(path, fd, static_cast<uint64_t>(st.st_size)));
}

RandomAccessFile::~RandomAccessFile() { ::close(fd_); }

absl::Status RandomAccessFile::Read(uint64_t offset, uint64_t n, void* dst) const {
  if (offset > size_ || n > size_ - offset) {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": read of ", n, " bytes at offset ",
                                                   offset, " is beyond the end of the file (",
                                                   size_, " bytes)"));
  }
  char* out = static_cast<char*>(dst);
  while (n > 0) {
    // pread may return short counts (and Linux caps one call at ~2 GiB).
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(n, uint64_t{1} << 30));
    const ssize_t got = ::pread(fd_, out, chunk, static_cast<off_t>(offset));
    if (got < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "read", path_);
    }
    if (got == 0) {
      return absl::DataLossError(absl::StrCat(path_, ": file shrank while reading"));
    }
    out += got;
    offset += static_cast<uint64_t>(got);
    n -= static_cast<uint64_t>(got);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<AtomicFileWriter>> AtomicFileWriter::Create(
    const std::string& path) {
  std::string temp_path = path + ".tmp.XXXXXX";
  std::vector<char> buffer(temp_path.begin(), temp_path.end());
  buffer.push_back('\0');
  const int fd = ::mkostemp(buffer.data(), O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "create a temporary file for", path);
  // mkstemp creates 0600; checkpoints are ordinary data files.
  ::fchmod(fd, 0644);
  temp_path.assign(buffer.data());
  return std::unique_ptr<AtomicFileWriter>(new AtomicFileWriter(path, temp_path, fd));
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_path_.c_str());
}

absl::Status AtomicFileWriter::Append(const void* data, uint64_t n) {
  if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat(path_, ": writer is closed"));
  const char* in = static_cast<const char*>(data);
  while (n > 0) {
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(n, uint64_t{1} << 30));
    const ssize_t put = ::write(fd_, in, chunk);
    if (put < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "write", temp_path_);
    }
    in += put;
    n -= static_cast<uint64_t>(put);
  }
  return absl::OkStatus();
}

absl::Status AtomicFileWriter::Commit() {
  if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat(path_, ": writer is closed"));
  if (::fsync(fd_) != 0) return ErrnoError(errno, "fsync", temp_path_);
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) return ErrnoError(errno, "close", temp_path_);
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    return ErrnoError(errno, "rename a temporary file onto", path_);
  }
  committed_ = true;
  // Make the rename itself durable; best effort (some file systems refuse fsync on directories).
  const int dir_fd = ::open(DirName(path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  auto file = RandomAccessFile::Open(path);
  if (!file.ok()) return file.status();
  std::string contents((*file)->size(), '\0');
  RLHF_RETURN_IF_ERROR((*file)->Read(0, contents.size(), contents.data()));
  return contents;
}

absl::Status WriteFileAtomically(const std::string& path, std::string_view contents) {
  auto writer = AtomicFileWriter::Create(path);
  if (!writer.ok()) return writer.status();
  RLHF_RETURN_IF_ERROR((*writer)->Append(contents.data(), contents.size()));
  return (*writer)->Commit();
}

bool IsRegularFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace rlhf::file
