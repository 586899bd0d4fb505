// The health of a multi-host population's processes, as `coordinator status` shows it
// (docs/coordinator.md, "Status and health"): each registered process (process_registry.h)
// is judged by its heartbeat age on the database clock and, when that is fresh, by a GET of
// its /healthz, all probed in parallel with a short timeout.
//
//   health        when
//   ok            heartbeat fresh, /healthz answered 200 (or the process serves no metrics)
//   standby       heartbeat fresh, /healthz answered 503 "standby" (a warm standby: fine; a
//                 standby serving no metrics is judged by its heartbeat and role alone)
//   unreachable   heartbeat fresh, /healthz did not answer within the timeout
//   unhealthy     heartbeat fresh, /healthz answered something else
//   stale         no heartbeat for stale_after (killed, paused, or cut off from the database)
//   gone          no heartbeat for gone_after (the leader deletes it after kProcessPruneAfter)
#ifndef FEDLORA_COORDINATOR_PROCESS_STATUS_H_
#define FEDLORA_COORDINATOR_PROCESS_STATUS_H_

#include <chrono>
#include <string>
#include <vector>

#include "fedlora/coordinator/process_registry.h"

namespace fedlora::coordinator {

struct ProcessHealthOptions {
  std::chrono::milliseconds stale_after = kProcessStaleAfter;
  std::chrono::milliseconds gone_after = kProcessGoneAfter;
  std::chrono::milliseconds probe_timeout{300};
};

struct ProcessHealth {
  RegisteredProcess process;
  std::string health;       // see the table above
  int healthz_status = -1;  // HTTP status of GET /healthz; 0 no answer; -1 not probed
  std::string healthz_body;
};

// `healthz_status` as in ProcessHealth; `healthz_body` its body; `role` the registered one.
std::string ClassifyHealth(const std::string& role, double heartbeat_age_seconds,
                           int healthz_status,
                           const std::string& healthz_body, const ProcessHealthOptions& options);

// GET http://`host_port`/healthz within `timeout` (connect and read each): the HTTP status, 0
// when nothing answered; the body in *body.
int ProbeHealthz(const std::string& host_port, std::chrono::milliseconds timeout,
                 std::string* body);

// Probes every process whose heartbeat is fresh and that has a metrics address, all at once
// (one thread each), and classifies each. Order kept.
std::vector<ProcessHealth> AssessProcesses(const std::vector<RegisteredProcess>& processes,
                                           const ProcessHealthOptions& options);

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_PROCESS_STATUS_H_
