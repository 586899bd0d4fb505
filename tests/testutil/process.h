// Background processes for process-level tests (a real coordinator, real devices): started with
// fork/exec, output to files, waited for with a bounded time, killed at the end.
#ifndef FEDLORA_TESTS_TESTUTIL_PROCESS_H_
#define FEDLORA_TESTS_TESTUTIL_PROCESS_H_

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

namespace fedlora::testing {

class ChildProcess {
 public:
  // Runs FEDLORA_BINARY with `args`; stdout and stderr go to `log_prefix`.out / .err. `env`
  // entries are added to the environment.
  static ChildProcess StartFedlora(const std::vector<std::string>& args,
                                   const std::string& log_prefix,
                                   const std::map<std::string, std::string>& env = {});
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&&) = delete;
  ~ChildProcess();  // SIGKILLs a process still running

  // Waits up to `seconds`; returns the exit code, 128 + signal when killed by one, or -1 on
  // timeout (the process keeps running).
  int Wait(double seconds);
  void Kill(int signal);
  bool Running();
  // Polls the stdout file until a line contains `needle` (returns that line) or `seconds` pass
  // (returns "").
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

// A TCP port that was free a moment ago on 127.0.0.1.
int FreeLoopbackPort();

// A TCP proxy on 127.0.0.1 that forwards every connection to 127.0.0.1:`target_port` and
// records every byte the clients send (to test what leaves a device).
class RecordingProxy {
 public:
  explicit RecordingProxy(int target_port);
  ~RecordingProxy();
  int port() const { return port_; }
  // Everything received from clients so far, in arrival order per connection.
  std::string ClientBytes();

 private:
  struct State;
  State* state_;
  int port_ = 0;
};

}  // namespace fedlora::testing

#endif  // FEDLORA_TESTS_TESTUTIL_PROCESS_H_
