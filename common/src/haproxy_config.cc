#include "fedlora/common/haproxy_config.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace fedlora {

std::string HaproxyConfig(const HaproxyConfigSpec& s) {
  std::string c = absl::StrCat(
      "# fedlora: HAProxy in front of the edge (or coordinator) processes "
      "(docs/coordinator.md, \"Multi-host\").\n"
      "# TCP passthrough: TLS ends in the coordinator, so call signatures stay end to end.\n"
      "global\n"
      "  log stdout format raw local0 info\n"
      "  maxconn 4096\n"
      "\n"
      "defaults\n"
      "  mode tcp\n"
      "  log global\n"
      "  option dontlognull\n"
      "  timeout connect 2s\n"
      "  # secure-aggregation calls return when their phase closes, check-ins when the\n"
      "  # selection window ends: long idle client and server sides are normal.\n"
      "  timeout client 15m\n"
      "  timeout server 15m\n"
      "  # a SIGSTOPped process accepts the TCP connection (its kernel does) but never answers\n"
      "  timeout check 1s\n"
      "\n"
      "frontend devices\n"
      "  bind ",
      s.listen_host, ":", s.listen_port,
      "\n"
      "  default_backend coordinators\n"
      "\n"
      "backend coordinators\n"
      "  # first: only the leader passes its check (a standby answers 503 and opens no gRPC\n"
      "  # port until it takes the lease);\n"
      "  # leastconn: any live edge, the one with the fewest devices connected\n"
      "  balance ",
      s.balance,
      "\n"
      "  # a connection refused (a process just killed, its checks not failed yet) is tried\n"
      "  # again on another server\n"
      "  option redispatch\n"
      "  retries 2\n"
      "  option httpchk GET /healthz\n"
      "  http-check expect status 200\n"
      "  # a backend marked down has its sessions shut: devices reconnect to the new leader\n"
      "  default-server inter ",
      s.check_interval_ms, "ms fall ", s.fall, " rise ", s.rise,
      " on-marked-down shutdown-sessions\n");
  for (const HaproxyBackend& b : s.backends) {
    absl::StrAppend(&c, "  server ", b.name, " ", b.host, ":", b.port, " check port ",
                    b.health_port, "\n");
  }
  return c;
}

std::string HaproxyBinary() {
  const char* env = std::getenv("FEDLORA_HAPROXY");
  return env && *env ? env : "/usr/sbin/haproxy";
}

}  // namespace fedlora
