// An exclusive lock on a file for the lifetime of a process (flock), with the holder's pid
// written into the file so that a refused process can say who holds it.
//
//   auto lock = ProcessLock::Acquire(dir + "/coordinator.lock");
//   if (!lock.ok()) return lock.status();   // FAILED_PRECONDITION: "... held by pid 1234"
//   // ... keep *lock alive while using dir ...
#ifndef FEDLORA_COMMON_PROCESS_LOCK_H_
#define FEDLORA_COMMON_PROCESS_LOCK_H_

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace fedlora {

class ProcessLock {
 public:
  // Opens (creating, mode 0600) `path`, takes flock(LOCK_EX | LOCK_NB) on it and writes this
  // process's pid into it. The lock is released when the object is destroyed or the process
  // dies (even by SIGKILL: the kernel drops it with the last descriptor), so a stale file never
  // blocks anyone. The descriptor is close-on-exec.
  // Errors: FAILED_PRECONDITION when another open of the file holds the lock (the message says
  // "held by pid N" when the holder wrote its pid; `holder_pid`, when given, receives N or 0);
  // PERMISSION_DENIED / INTERNAL when the file cannot be opened (the message names the path).
  static absl::StatusOr<std::unique_ptr<ProcessLock>> Acquire(const std::string& path,
                                                              pid_t* holder_pid = nullptr);
  ~ProcessLock();
  ProcessLock(const ProcessLock&) = delete;
  ProcessLock& operator=(const ProcessLock&) = delete;

  const std::string& path() const { return path_; }

 private:
  ProcessLock(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_;
  std::string path_;
};

}  // namespace fedlora

#endif  // FEDLORA_COMMON_PROCESS_LOCK_H_
