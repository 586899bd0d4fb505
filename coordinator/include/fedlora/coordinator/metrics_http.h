// HTTP endpoint for Prometheus scrapes of a MetricsRegistry (cpp-httplib, background thread).
#ifndef FEDLORA_COORDINATOR_METRICS_HTTP_H_
#define FEDLORA_COORDINATOR_METRICS_HTTP_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "absl/status/statusor.h"
#include "fedlora/coordinator/metrics.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace fedlora::coordinator {

class MetricsHttpServer {
 public:
  // What GET /healthz answers: an HTTP status and a short body. A serving process answers
  // {200, "ok"} (the default); a standby {503, "standby"}, so HAProxy keeps it out.
  using HealthFn = std::function<std::pair<int, std::string>()>;

  // Binds host:port (port 0 picks a free port) and serves, on a background thread:
  //   GET /metrics -> 200, registry->RenderPrometheus(), "text/plain; version=0.0.4; charset=utf-8"
  //   GET /healthz -> `health()` (default 200, "ok"), text/plain
  // Other paths answer 404; other methods on those two paths 405 (HEAD is answered like GET).
  // `registry` must outlive the server. Returns once the server accepts connections.
  // Fails with INVALID_ARGUMENT (null registry, port outside 0..65535), UNAVAILABLE (the port is
  // in use: "port 9090 on 127.0.0.1 is in use ... pass --metrics HOST:PORT"), FAILED_PRECONDITION
  // (permission denied, or the host is not a local address / cannot be resolved), INTERNAL
  // (the server thread did not start listening).
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(const MetricsRegistry* registry,
                                                                  const std::string& host,
                                                                  int port,
                                                                  HealthFn health = nullptr);

  // The bound port (the one picked when Start was given 0).
  int port() const { return port_; }

  // Stops accepting, finishes in-flight requests (idle keep-alive connections close within
  // about a second) and joins the thread.
  ~MetricsHttpServer();

  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

 private:
  MetricsHttpServer(std::unique_ptr<httplib::Server> server, int port);

  std::unique_ptr<httplib::Server> server_;
  int port_;
  std::thread thread_;
};

// Reads host:port/metrics (what MetricsHttpServer serves) and returns the sum of the series of
// `family` whose labels include every pair of `labels` (all of the family's series when empty);
// 0 when none has been counted yet. UNAVAILABLE: no answer within 2 s, or not 200.
absl::StatusOr<double> ScrapeMetric(const std::string& host, int port, const std::string& family,
                                    const std::map<std::string, std::string>& labels = {});

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_METRICS_HTTP_H_
