#include "testutil/process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

namespace fedlora::testing {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

ChildProcess ChildProcess::StartFedlora(const std::vector<std::string>& args,
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
    std::string bin = FEDLORA_BINARY;
    argv.push_back(bin.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  return ChildProcess(pid, log_prefix);
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

int FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

struct RecordingProxy::State {
  int listen_fd = -1;
  int target = 0;
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::string recorded;
  std::thread acceptor;
  std::vector<std::thread> conns;  // guarded by mu
};

RecordingProxy::RecordingProxy(int target_port) : state_(new State) {
  state_->target = target_port;
  state_->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(state_->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(state_->listen_fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  listen(state_->listen_fd, 64);
  socklen_t len = sizeof(a);
  getsockname(state_->listen_fd, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  State* s = state_;
  s->acceptor = std::thread([s] {
    while (!s->stop) {
      pollfd p{s->listen_fd, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      int client = accept(s->listen_fd, nullptr, nullptr);
      if (client < 0) continue;
      int server = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in t{};
      t.sin_family = AF_INET;
      t.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      t.sin_port = htons(static_cast<uint16_t>(s->target));
      if (connect(server, reinterpret_cast<sockaddr*>(&t), sizeof(t)) != 0) {
        close(client);
        close(server);
        continue;
      }
      std::lock_guard<std::mutex> lock(s->mu);
      s->conns.emplace_back([s, client, server] {
        char buf[65536];
        pollfd fds[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
        while (!s->stop) {
          if (poll(fds, 2, 100) <= 0) continue;
          bool done = false;
          for (int i = 0; i < 2 && !done; ++i) {
            if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t n = read(fds[i].fd, buf, sizeof(buf));
            if (n <= 0) {
              done = true;
              break;
            }
            if (i == 0) {
              std::lock_guard<std::mutex> lock(s->mu);
              s->recorded.append(buf, static_cast<size_t>(n));
            }
            const int out = i == 0 ? server : client;
            for (ssize_t off = 0; off < n;) {
              ssize_t w = write(out, buf + off, static_cast<size_t>(n - off));
              if (w <= 0) {
                done = true;
                break;
              }
              off += w;
            }
          }
          if (done) break;
        }
        close(client);
        close(server);
      });
    }
  });
}

RecordingProxy::~RecordingProxy() {
  state_->stop = true;
  state_->acceptor.join();  // the only thread adding connections
  for (auto& t : state_->conns) t.join();
  close(state_->listen_fd);
  delete state_;
}

std::string RecordingProxy::ClientBytes() {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->recorded;
}

}  // namespace fedlora::testing
