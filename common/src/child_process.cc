#include "fedlora/common/child_process.h"

#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

namespace fedlora {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

ChildProcess ChildProcess::Start(const std::string& binary, const std::vector<std::string>& args,
                                 const std::string& log_prefix,
                                 const std::map<std::string, std::string>& env) {
  const std::string out = log_prefix + ".out", err = log_prefix + ".err";
  pid_t pid = fork();
  if (pid == 0) {
    int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(o, 1);
    dup2(e, 2);
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> argv;
    std::string bin = binary;
    argv.push_back(bin.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  return ChildProcess(pid, log_prefix);
}

ChildProcess ChildProcess::StartUnprivileged(const std::string& binary,
                                             const std::vector<std::string>& args,
                                             const std::string& log_prefix,
                                             const std::map<std::string, std::string>& env) {
  if (::geteuid() != 0) return Start(binary, args, log_prefix, env);
  const passwd* nobody = ::getpwnam("nobody");
  const std::string uid = nobody ? std::to_string(nobody->pw_uid) : "65534";
  const std::string gid = nobody ? std::to_string(nobody->pw_gid) : "65534";
  std::vector<std::string> argv = {"--reuid=" + uid, "--regid=" + gid, "--clear-groups", "--",
                                   binary};
  argv.insert(argv.end(), args.begin(), args.end());
  return Start("/usr/bin/setpriv", argv, log_prefix, env);
}

bool ChildProcess::GiveToUnprivilegedUser(const std::string& path) {
  if (::geteuid() != 0) return true;
  const passwd* nobody = ::getpwnam("nobody");
  return nobody != nullptr && ::chown(path.c_str(), nobody->pw_uid, nobody->pw_gid) == 0;
}

ChildProcess::ChildProcess(ChildProcess&& o) noexcept
    : pid_(o.pid_), status_(o.status_), prefix_(std::move(o.prefix_)) {
  o.pid_ = -1;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && Running()) {
    kill(pid_, SIGKILL);
    Wait(10);
  }
}

bool ChildProcess::Running() {
  if (pid_ <= 0 || status_ != -1) return false;
  int st = 0;
  pid_t r = waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return false;
  }
  return true;
}

int ChildProcess::Wait(double seconds) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (Running()) {
    if (std::chrono::steady_clock::now() > until) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return status_;
}

void ChildProcess::Kill(int signal) {
  if (pid_ > 0 && Running()) kill(pid_, signal);
}

std::string ChildProcess::WaitForLine(const std::string& needle, double seconds) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < until) {
    std::istringstream lines(Out());
    std::string line;
    while (std::getline(lines, line)) {
      if (line.find(needle) != std::string::npos) return line;
    }
    if (!Running()) return "";
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return "";
}

std::string ChildProcess::Out() const { return ReadAll(prefix_ + ".out"); }
std::string ChildProcess::Err() const { return ReadAll(prefix_ + ".err"); }

}  // namespace fedlora
