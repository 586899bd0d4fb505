// The HAProxy configuration in front of a population's edge processes, or of its coordinator
// processes when it runs none (multi-host mode, docs/coordinator.md "Multi-host"): TCP
// passthrough (TLS ends in our processes, so a
// device's call signatures and the server certificate stay end to end), every backend checked
// over HTTP on its metrics port (GET /healthz). A standby answers 503 "standby" and a paused
// (SIGSTOPped) leader does not answer HTTP, so HAProxy sends devices to the live leader only;
// a backend marked down has its open sessions shut, so devices reconnect at once; a connection
// a backend refuses (killed before its checks failed) is redispatched to another. Written by
// `fedlora cluster up` (DIR/haproxy.cfg) and used by the tests' HaproxyServer.
#ifndef FEDLORA_COMMON_HAPROXY_CONFIG_H_
#define FEDLORA_COMMON_HAPROXY_CONFIG_H_

#include <string>
#include <vector>

namespace fedlora {

struct HaproxyBackend {
  std::string name;  // letters, digits, '-', '_' (e.g. "coord-1")
  std::string host = "127.0.0.1";
  int port = 0;         // the process's gRPC port (devices' traffic)
  int health_port = 0;  // its metrics port, where GET /healthz answers 200 while it serves
};

struct HaproxyConfigSpec {
  std::string listen_host = "127.0.0.1";
  int listen_port = 0;  // where devices connect
  std::vector<HaproxyBackend> backends;
  int check_interval_ms = 500;  // `inter`: one health check per backend this often
  int fall = 2;                 // failed checks in a row before a backend is marked down
  int rise = 1;                 // passed checks before it is marked up again
  // "first": every device to the first live backend (coordinators: only the leader is up);
  // "leastconn": spread over all live ones (edges; gRPC connections are long-lived).
  std::string balance = "first";
};

// The configuration text (haproxy 2.6 syntax), with comments saying what each part is for.
// Server state changes are logged to stdout (run it with `haproxy -f FILE -db`).
std::string HaproxyConfig(const HaproxyConfigSpec& spec);

// Where Debian installs HAProxy (package haproxy); FEDLORA_HAPROXY overrides.
std::string HaproxyBinary();

}  // namespace fedlora

#endif  // FEDLORA_COMMON_HAPROXY_CONFIG_H_
