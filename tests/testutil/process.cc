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

ChildProcess StartFedlora(const std::vector<std::string>& args, const std::string& log_prefix,
                          const std::map<std::string, std::string>& env) {
  return ChildProcess::Start(FEDLORA_BINARY, args, log_prefix, env);
}

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
