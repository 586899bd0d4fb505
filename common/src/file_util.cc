#include "fedlora/common/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace fedlora {

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot open '", path, "': ", std::strerror(errno),
                                            " (hint: check the path)"));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return absl::InternalError(absl::StrCat("error reading '", path, "'"));
  return ss.str();
}

absl::Status WriteFileAtomic(const std::string& path, absl::string_view data) {
  std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("cannot create '", tmp, "': ", std::strerror(errno)));
  }
  const char* p = data.data();
  size_t left = data.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return absl::ResourceExhaustedError(absl::StrCat(
          "writing '", path, "' failed: ", std::strerror(err),
          err == ENOSPC ? " (hint: the disk is full; free space and retry, the old file is kept)"
                        : ""));
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return absl::InternalError(absl::StrCat("flushing '", path, "' failed: ", std::strerror(err)));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return absl::InternalError(
        absl::StrCat("renaming into '", path, "' failed: ", std::strerror(err)));
  }
  return SyncParentDir(path);
}

absl::Status SyncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat("cannot open directory '", dir, "' to sync it: ", std::strerror(errno)));
  }
  int err = 0;
  if (::fsync(fd) != 0) err = errno;
  ::close(fd);
  // EINVAL: a file system that cannot sync directories (nothing to make durable there).
  if (err != 0 && err != EINVAL) {
    return absl::InternalError(absl::StrCat("syncing directory '", dir,
                                            "' failed: ", std::strerror(err),
                                            " (hint: the last rename in it may not survive a "
                                            "power loss; check the disk)"));
  }
  return absl::OkStatus();
}

absl::Status SyncParentDir(const std::string& path) {
  const std::string parent = std::filesystem::path(path).parent_path().string();
  return SyncDir(parent.empty() ? "." : parent);
}

absl::Status MakeDirs(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot create directory '", path, "': ", ec.message()));
  }
  return absl::OkStatus();
}

}  // namespace fedlora
