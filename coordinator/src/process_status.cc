#include "fedlora/coordinator/process_status.h"

#include <httplib.h>

#include <thread>

#include "absl/strings/numbers.h"

namespace fedlora::coordinator {
namespace {

double Seconds(std::chrono::milliseconds d) { return d.count() / 1000.0; }

}  // namespace

std::string ClassifyHealth(const std::string& role, double age, int status,
                           const std::string& body, const ProcessHealthOptions& o) {
  if (age > Seconds(o.gone_after)) return "gone";
  if (age > Seconds(o.stale_after)) return "stale";
  if (status == -1) return role == kRoleStandby ? "standby" : "ok";
  if (status == 200) return "ok";
  if (status == 0) return "unreachable";
  if (status == 503 && body == "standby") return "standby";
  return "unhealthy";
}

int ProbeHealthz(const std::string& host_port, std::chrono::milliseconds timeout,
                 std::string* body) {
  const size_t colon = host_port.rfind(':');
  if (colon == std::string::npos) return 0;
  std::string host = host_port.substr(0, colon);
  if (host.size() > 1 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  int port = 0;
  if (!absl::SimpleAtoi(host_port.substr(colon + 1), &port)) return 0;
  httplib::Client http(host, port);
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(timeout).count();
  http.set_connection_timeout(us / 1000000, us % 1000000);
  http.set_read_timeout(us / 1000000, us % 1000000);
  http.set_write_timeout(us / 1000000, us % 1000000);
  auto res = http.Get("/healthz");
  if (!res) return 0;
  if (body) *body = res->body;
  return res->status;
}

std::vector<ProcessHealth> AssessProcesses(const std::vector<RegisteredProcess>& processes,
                                           const ProcessHealthOptions& o) {
  std::vector<ProcessHealth> out(processes.size());
  std::vector<std::thread> probes;
  for (size_t i = 0; i < processes.size(); ++i) {
    out[i].process = processes[i];
    const bool fresh = processes[i].heartbeat_age_seconds <= Seconds(o.stale_after);
    if (fresh && !processes[i].record.metrics_address.empty()) {
      probes.emplace_back([&out, i, &o] {
        out[i].healthz_status = ProbeHealthz(out[i].process.record.metrics_address, o.probe_timeout,
                                             &out[i].healthz_body);
      });
    }
  }
  for (auto& t : probes) t.join();
  for (auto& h : out) {
    h.health = ClassifyHealth(h.process.record.role, h.process.heartbeat_age_seconds, h.healthz_status, h.healthz_body, o);
  }
  return out;
}

}  // namespace fedlora::coordinator
