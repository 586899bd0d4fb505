// HAProxy 2.6 in front of coordinator or edge processes for process-level tests (Debian's haproxy,
// /usr/sbin/haproxy; FEDLORA_HAPROXY overrides): the configuration `fedlora cluster` writes
// (fedlora/common/haproxy_config.h: TCP passthrough, health checks GET /healthz on each
// backend's metrics port), `haproxy -f cfg -db` in the foreground on 127.0.0.1, its log (server
// state changes) in <dir>/haproxy.out. HAProxy does not refuse root, so it runs as the test does.
// Stopped in bounded time: SIGTERM, SIGKILL after 5 s.
//
// When the binary is missing, ok() is false and error() names `bash scripts/setup.sh test`:
// a test must FAIL then, never skip.
#ifndef FEDLORA_TESTS_TESTUTIL_HAPROXY_SERVER_H_
#define FEDLORA_TESTS_TESTUTIL_HAPROXY_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "fedlora/common/child_process.h"
#include "fedlora/common/haproxy_config.h"

namespace fedlora::testing {

class HaproxyServer {
 public:
  // Writes <dir>/haproxy.cfg for `backends` (check every `check_interval_ms`, down after two
  // failed checks, up after one) on a free loopback port and starts HAProxy; waits up to 30 s
  // for the front end to accept connections. `balance`: HaproxyConfigSpec::balance.
  HaproxyServer(const std::string& dir, const std::vector<HaproxyBackend>& backends,
                int check_interval_ms = 500, const std::string& balance = "first");
  ~HaproxyServer();
  HaproxyServer(const HaproxyServer&) = delete;
  HaproxyServer& operator=(const HaproxyServer&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  int port() const { return port_; }  // where devices connect
  int pid() const;                     // HAProxy's process (0 when not started)
  const std::string& config() const { return config_; }
  std::string Log() const;  // stdout: "Server coordinators/x is DOWN" ...
  bool running();
  void Stop();  // idempotent

 private:
  std::string dir_, config_, error_;
  int port_ = 0;
  std::unique_ptr<ChildProcess> haproxy_;
};

}  // namespace fedlora::testing

#endif  // FEDLORA_TESTS_TESTUTIL_HAPROXY_SERVER_H_
