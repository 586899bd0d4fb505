#include "fedlora/common/net_address.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/match.h"

namespace fedlora {
namespace {

bool IsLoopbackV4(const in_addr& a) { return (ntohl(a.s_addr) >> 24) == 127; }

bool IsLoopbackV6(const in6_addr& a) {
  if (IN6_IS_ADDR_LOOPBACK(&a)) return true;
  if (IN6_IS_ADDR_V4MAPPED(&a)) {
    in_addr v4;
    std::memcpy(&v4, a.s6_addr + 12, 4);
    return IsLoopbackV4(v4);
  }
  return false;
}

// Every address `host` resolves to is loopback (and there is at least one).
bool ResolvesToLoopbackOnly(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &list) != 0 || list == nullptr) return false;
  bool all = true;
  for (const addrinfo* ai = list; ai != nullptr && all; ai = ai->ai_next) {
    if (ai->ai_family == AF_INET) {
      all = IsLoopbackV4(reinterpret_cast<const sockaddr_in*>(ai->ai_addr)->sin_addr);
    } else if (ai->ai_family == AF_INET6) {
      all = IsLoopbackV6(reinterpret_cast<const sockaddr_in6*>(ai->ai_addr)->sin6_addr);
    } else {
      all = false;
    }
  }
  freeaddrinfo(list);
  return all;
}

}  // namespace

std::string HostOfAddress(const std::string& host_port) {
  if (absl::StartsWith(host_port, "[")) {
    const auto close = host_port.find(']');
    return close == std::string::npos ? host_port.substr(1) : host_port.substr(1, close - 1);
  }
  // One colon: host:port. More than one without brackets: a bare IPv6 address.
  const auto colon = host_port.rfind(':');
  if (colon != std::string::npos && host_port.find(':') == colon) {
    return host_port.substr(0, colon);
  }
  return host_port;
}

bool IsLoopbackAddress(const std::string& host_port) {
  if (absl::StartsWith(host_port, "unix:")) return true;
  std::string host = HostOfAddress(host_port);
  // gRPC target schemes ("ipv4:127.0.0.1:1", "dns:///localhost:1") are judged by their host.
  for (const char* scheme : {"ipv4:", "ipv6:", "dns:///", "dns:"}) {
    if (absl::StartsWith(host_port, scheme)) {
      host = HostOfAddress(host_port.substr(std::strlen(scheme)));
      break;
    }
  }
  if (host.empty()) return false;
  in_addr v4;
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return IsLoopbackV4(v4);
  in6_addr v6;
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) return IsLoopbackV6(v6);
  return ResolvesToLoopbackOnly(host);
}

int PickFreeLoopbackPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

bool LoopbackPortAccepts(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  ::close(fd);
  return ok;
}

}  // namespace fedlora
