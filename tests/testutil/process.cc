#include "testutil/process.h"

#include "fedlora/common/net_address.h"

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

int FreeLoopbackPort() { return ::fedlora::PickFreeLoopbackPort(); }

struct RecordingProxy::State {
  int listen_fd = -1;
  int target = 0;
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::string recorded;
  std::vector<std::string> per_connection;  // guarded by mu
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
      const size_t index = s->per_connection.size();
      s->per_connection.emplace_back();
      s->conns.emplace_back([s, client, server, index] {
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
              s->per_connection[index].append(buf, static_cast<size_t>(n));
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

std::vector<std::string> RecordingProxy::ClientConnections() {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->per_connection;
}

std::vector<std::string> GrpcRequestMessages(const std::string& b) {
  static const std::string kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  std::vector<std::string> out;
  if (b.compare(0, kPreface.size(), kPreface) != 0) return out;
  std::map<uint32_t, std::string> pending;  // stream id -> DATA bytes not yet cut
  const auto u8 = [&b](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(b[i])); };
  size_t pos = kPreface.size();
  while (pos + 9 <= b.size()) {
    const uint32_t length = (u8(pos) << 16) | (u8(pos + 1) << 8) | u8(pos + 2);
    const uint32_t type = u8(pos + 3), flags = u8(pos + 4);
    const uint32_t stream =
        ((u8(pos + 5) << 24) | (u8(pos + 6) << 16) | (u8(pos + 7) << 8) | u8(pos + 8)) &
        0x7fffffffu;
    if (pos + 9 + length > b.size()) break;
    if (type == 0) {  // DATA, maybe padded
      size_t start = pos + 9, end = pos + 9 + length;
      if ((flags & 0x8) && length > 0) {
        const uint32_t pad = u8(start);
        start += 1;
        if (pad > end - start) break;
        end -= pad;
      }
      std::string& data = pending[stream];
      data.append(b, start, end - start);
      // Cut complete gRPC messages: 1 byte compressed flag, 4 bytes big-endian length.
      size_t used = 0;
      while (data.size() - used >= 5) {
        const auto d = [&data](size_t i) {
          return static_cast<uint32_t>(static_cast<uint8_t>(data[i]));
        };
        const uint32_t n =
            (d(used + 1) << 24) | (d(used + 2) << 16) | (d(used + 3) << 8) | d(used + 4);
        if (data.size() - used - 5 < n) break;
        out.push_back(data.substr(used + 5, n));
        used += 5 + n;
      }
      data.erase(0, used);
    }
    pos += 9 + length;
  }
  return out;
}

bool TopLevelScalars(const std::string& m, WireScalars* out) {
  size_t pos = 0;
  const auto varint = [&m, &pos](uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64 && pos < m.size(); shift += 7) {
      const uint8_t byte = static_cast<uint8_t>(m[pos++]);
      *v |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return true;
    }
    return false;
  };
  while (pos < m.size()) {
    uint64_t tag = 0, v = 0;
    if (!varint(&tag) || (tag >> 3) == 0) return false;
    switch (tag & 7) {
      case 0:
        if (!varint(&v)) return false;
        out->varints.push_back(v);
        break;
      case 1:
        if (pos + 8 > m.size()) return false;
        for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(m[pos + i]);
        out->fixed64.push_back(v);
        pos += 8;
        break;
      case 2:
        if (!varint(&v) || v > m.size() - pos) return false;
        pos += v;
        break;
      case 5:
        if (pos + 4 > m.size()) return false;
        pos += 4;
        break;
      default:
        return false;
    }
  }
  return true;
}

}  // namespace fedlora::testing
