// A child process started with fork/exec, its stdout and stderr in files, waited for with a
// bounded time and SIGKILLed when the owner goes away (used by `fedlora sim --transport grpc` to
// run a real coordinator process, and by process-level tests).
#ifndef FEDLORA_COMMON_CHILD_PROCESS_H_
#define FEDLORA_COMMON_CHILD_PROCESS_H_

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

namespace fedlora {

class ChildProcess {
 public:
  // Runs `binary` with `args`; stdout and stderr go to `log_prefix`.out / .err. `env` entries
  // are added to the environment. A binary that cannot be executed exits with code 127.
  static ChildProcess Start(const std::string& binary, const std::vector<std::string>& args,
                            const std::string& log_prefix,
                            const std::map<std::string, std::string>& env = {});
  // As Start, but when this process is root the child runs as the unprivileged user `nobody`
  // through /usr/bin/setpriv (servers that refuse root, such as PostgreSQL); otherwise as
  // this user. Without setpriv the child exits with 127.
  static ChildProcess StartUnprivileged(const std::string& binary,
                                        const std::vector<std::string>& args,
                                        const std::string& log_prefix,
                                        const std::map<std::string, std::string>& env = {});
  // Makes `path` owned by the user StartUnprivileged runs as (nothing to do when not root).
  // False when that fails (no user nobody, or chown refused).
  static bool GiveToUnprivilegedUser(const std::string& path);
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&&) = delete;
  ~ChildProcess();  // SIGKILLs a process still running

  // Waits up to `seconds`; returns the exit code, 128 + signal when killed by one, or -1 on
  // timeout (the process keeps running).
  int Wait(double seconds);
  void Kill(int signal);
  bool Running();
  // Polls the stdout file until a line contains `needle` (returns that line) or `seconds` pass
  // or the process exits (returns "").
  std::string WaitForLine(const std::string& needle, double seconds);
  std::string Out() const;
  std::string Err() const;
  pid_t pid() const { return pid_; }

 private:
  ChildProcess(pid_t pid, std::string prefix) : pid_(pid), prefix_(std::move(prefix)) {}
  pid_t pid_ = -1;
  int status_ = -1;
  std::string prefix_;
};

}  // namespace fedlora

#endif  // FEDLORA_COMMON_CHILD_PROCESS_H_
