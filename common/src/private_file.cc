#include "fedlora/common/private_file.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/random.h"

namespace fedlora {
namespace {

absl::Status WriteAll(int fd, std::string_view data, const std::string& path) {
  const char* p = data.data();
  size_t left = data.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      if (err == ENOSPC) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "writing '", path, "' failed: ", std::strerror(err), " (hint: free disk space)"));
      }
      return absl::InternalError(absl::StrCat("writing '", path, "' failed: ", std::strerror(err)));
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status WriteFileWithMode(const std::string& path, std::string_view data, mode_t mode,
                               ExistingFile existing) {
  SecureRandom rng;
  std::string tmp = absl::StrFormat("%s.tmp.%d.%016x", path, ::getpid(), rng.NextU64());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("cannot create '", tmp, "': ", std::strerror(errno),
                                            " (hint: check that the directory exists and is "
                                            "writable)"));
  }
  absl::Status status;
  if (::fchmod(fd, mode) != 0) {
    status = absl::InternalError(absl::StrCat("chmod '", tmp, "': ", std::strerror(errno)));
  }
  if (status.ok()) status = WriteAll(fd, data, path);
  if (status.ok() && ::fsync(fd) != 0) {
    status = absl::InternalError(absl::StrCat("flushing '", path, "': ", std::strerror(errno)));
  }
  if (::close(fd) != 0 && status.ok()) {
    status = absl::InternalError(absl::StrCat("closing '", path, "': ", std::strerror(errno)));
  }
  if (status.ok()) {
    if (existing == ExistingFile::kReplace) {
      if (::rename(tmp.c_str(), path.c_str()) != 0) {
        status = absl::InternalError(
            absl::StrCat("renaming into '", path, "' failed: ", std::strerror(errno)));
      }
    } else if (::link(tmp.c_str(), path.c_str()) != 0) {
      int err = errno;
      status = err == EEXIST ? absl::AlreadyExistsError(absl::StrCat(
                                   "'", path,
                                   "' already exists (hint: refusing to overwrite it; move it "
                                   "away or choose another path)"))
                             : absl::InternalError(absl::StrCat(
                                   "linking '", path, "' into place failed: ", std::strerror(err)));
    }
  }
  ::unlink(tmp.c_str());  // After rename it no longer exists; after link it is the 2nd name.
  if (status.ok()) status = SyncParentDir(path);  // the new name survives a power loss
  return status;
}

absl::StatusOr<std::string> ReadPrivateFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) {
      return absl::NotFoundError(
          absl::StrCat("'", path, "' does not exist (hint: check the path)"));
    }
    return absl::InternalError(absl::StrCat("cannot open '", path, "': ", std::strerror(err)));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return absl::InternalError(absl::StrCat("cannot stat '", path, "': ", std::strerror(err)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::FailedPreconditionError(
        absl::StrCat("'", path, "' is not a regular file (hint: point to the key file itself)"));
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    return absl::FailedPreconditionError(absl::StrFormat(
        "'%s' holds a secret but has mode %04o, readable or writable by group/others "
        "(hint: chmod 600 %s)",
        path, static_cast<unsigned>(st.st_mode & 07777), path));
  }
  std::string out;
  out.reserve(static_cast<size_t>(st.st_size) + 1);  // No reallocations: no stray key copies.
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return absl::InternalError(absl::StrCat("reading '", path, "': ", std::strerror(err)));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  OPENSSL_cleanse(buf, sizeof(buf));
  ::close(fd);
  return out;
}

}  // namespace fedlora
