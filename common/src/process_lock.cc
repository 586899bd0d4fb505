#include "fedlora/common/process_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace fedlora {
namespace {

// The pid the holder wrote, or 0 when the file holds none (it may be writing it right now).
pid_t ReadHolderPid(int fd) {
  char buf[32] = {};
  const ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
  if (n <= 0) return 0;
  int pid = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(std::string(buf, n)), &pid)) return 0;
  return pid;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ProcessLock>> ProcessLock::Acquire(const std::string& path,
                                                                  pid_t* holder_pid) {
  if (holder_pid) *holder_pid = 0;
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    const int e = errno;
    const std::string msg = absl::StrCat("cannot open the lock file ", path, ": ", strerror(e));
    if (e == EACCES || e == EPERM || e == EROFS) return absl::PermissionDeniedError(msg);
    return absl::InternalError(msg);
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    if (e == EWOULDBLOCK || e == EINTR) {
      const pid_t pid = ReadHolderPid(fd);
      close(fd);
      if (holder_pid) *holder_pid = pid;
      return absl::FailedPreconditionError(
          absl::StrCat(path, " is locked by another process",
                       pid > 0 ? absl::StrCat(" (held by pid ", pid, ")") : std::string()));
    }
    close(fd);
    return absl::InternalError(absl::StrCat("cannot lock ", path, ": ", strerror(e)));
  }
  const std::string pid = absl::StrCat(getpid(), "\n");
  if (ftruncate(fd, 0) != 0 || pwrite(fd, pid.data(), pid.size(), 0) != ssize_t(pid.size())) {
    const int e = errno;
    close(fd);
    return absl::InternalError(absl::StrCat("cannot write the pid into ", path, ": ", strerror(e)));
  }
  return std::unique_ptr<ProcessLock>(new ProcessLock(fd, path));
}

ProcessLock::~ProcessLock() {
  // Empty the file first so that a reader never finds the pid of a process that let go.
  if (ftruncate(fd_, 0) != 0) {
  }
  close(fd_);
}

}  // namespace fedlora
