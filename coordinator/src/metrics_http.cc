#include "fedlora/coordinator/metrics_http.h"

#include <httplib.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace fedlora::coordinator {
namespace {

constexpr char kMetricsContentType[] = "text/plain; version=0.0.4; charset=utf-8";

// httplib's default sets SO_REUSEPORT, which would let a second server bind the same port and
// silently split the scrapes. SO_REUSEADDR alone still allows a quick restart (TIME_WAIT).
void ReuseAddrOnly(socket_t sock) {
  int yes = 1;
  setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
}

absl::Status BindError(const std::string& host, int port, int err) {
  const std::string where = absl::StrCat("port ", port, " on ", host);
  switch (err) {
    case EADDRINUSE:
      return absl::UnavailableError(absl::StrCat(
          "metrics: ", where,
          " is in use (another coordinator or exporter?): pass --metrics HOST:PORT with a "
          "free port, or port 0 to pick one"));
    case EACCES:
      return absl::FailedPreconditionError(
          absl::StrCat("metrics: permission denied binding ", where,
                       " (ports below 1024 need privileges): pass --metrics HOST:PORT with a port "
                       "of 1024 or above"));
    case EADDRNOTAVAIL:
      return absl::FailedPreconditionError(
          absl::StrCat("metrics: ", host,
                       " is not an address of this machine: pass --metrics 127.0.0.1:PORT "
                       "(loopback) or 0.0.0.0:PORT (all interfaces)"));
    default:
      return absl::FailedPreconditionError(
          absl::StrCat("metrics: cannot listen on ", where, " (",
                       err != 0 ? std::strerror(err) : "host not resolvable or not local",
                       "): check --metrics HOST:PORT"));
  }
}

}  // namespace

MetricsHttpServer::MetricsHttpServer(std::unique_ptr<httplib::Server> server, int port)
    : server_(std::move(server)), port_(port) {}

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const MetricsRegistry* registry, const std::string& host, int port, HealthFn health) {
  if (registry == nullptr) {
    return absl::InvalidArgumentError("metrics: MetricsHttpServer::Start given no registry");
  }
  if (port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics: port ", port, " is outside 0..65535: pass port 0 to pick a free one"));
  }
  auto server = std::make_unique<httplib::Server>();
  server->set_socket_options(ReuseAddrOnly);
  server->new_task_queue = [] { return new httplib::ThreadPool(2); };
  server->set_keep_alive_timeout(1);
  server->set_read_timeout(2, 0);
  server->set_write_timeout(5, 0);

  server->Get("/metrics", [registry](const httplib::Request&, httplib::Response& res) {
    res.set_content(registry->RenderPrometheus(), kMetricsContentType);
  });
  server->Get("/healthz", [health](const httplib::Request&, httplib::Response& res) {
    if (!health) return res.set_content("ok", "text/plain; charset=utf-8");
    auto [status, body] = health();
    res.status = status;
    res.set_content(body, "text/plain; charset=utf-8");
  });
  server->set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
    if ((req.path == "/metrics" || req.path == "/healthz") && req.method != "GET" &&
        req.method != "HEAD") {
      res.status = 405;
      res.set_header("Allow", "GET, HEAD");
      res.set_content(absl::StrCat("method ", req.method, " not allowed: use GET\n"),
                      "text/plain; charset=utf-8");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  server->set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.status == 404 && res.body.empty()) {
      res.set_content("not found: the metrics server serves GET /metrics and GET /healthz\n",
                      "text/plain; charset=utf-8");
    }
  });

  errno = 0;
  int bound = port;
  if (port == 0) {
    bound = server->bind_to_any_port(host);
  } else if (!server->bind_to_port(host, port)) {
    bound = -1;
  }
  if (bound < 0) return BindError(host, port, errno);

  std::unique_ptr<MetricsHttpServer> self(new MetricsHttpServer(std::move(server), bound));
  auto finished = std::make_shared<std::atomic<bool>>(false);
  httplib::Server* raw = self->server_.get();
  self->thread_ = std::thread([raw, finished] {
    raw->listen_after_bind();
    finished->store(true);
  });
  // Wait until the accept loop runs: a stop() before that would be lost and the join would hang.
  // listen_after_bind() either marks the server running first thing or returns, so this ends.
  while (!raw->is_running()) {
    if (finished->load()) {
      return absl::InternalError(absl::StrCat("metrics: the HTTP server on ", host, ":", bound,
                                              " stopped before listening"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return self;
}

MetricsHttpServer::~MetricsHttpServer() {
  if (server_ != nullptr) server_->stop();
  if (thread_.joinable()) thread_.join();
}

absl::StatusOr<double> ScrapeMetric(const std::string& host, int port, const std::string& family,
                                    const std::map<std::string, std::string>& labels) {
  httplib::Client http(host, port);
  http.set_connection_timeout(2);
  http.set_read_timeout(2);
  auto res = http.Get("/metrics");
  if (!res || res->status != 200) {
    return absl::UnavailableError(
        absl::StrCat("http://", host, ":", port, "/metrics did not answer",
                     res ? absl::StrCat(" 200 (status ", res->status, ")") : std::string(""),
                     " (hint: is the process running, with --metrics on that port?)"));
  }
  double sum = 0;
  for (absl::string_view line : absl::StrSplit(res->body, '\n')) {
    if (!absl::StartsWith(line, family) || line.size() <= family.size()) continue;
    const char next = line[family.size()];
    if (next != '{' && next != ' ') continue;
    bool match = true;
    for (const auto& [name, value] : labels) {
      match = match && absl::StrContains(line, absl::StrCat(name, "=\"", value, "\""));
    }
    double v = 0;
    const size_t space = line.rfind(' ');
    if (match && space != absl::string_view::npos && absl::SimpleAtod(line.substr(space + 1), &v)) {
      sum += v;
    }
  }
  return sum;
}

}  // namespace fedlora::coordinator
