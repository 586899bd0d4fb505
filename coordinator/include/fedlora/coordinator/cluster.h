// `fedlora cluster`: a laptop rehearsal of multi-host mode (docs/coordinator.md, "Multi-host"),
// every part its own process under one folder DIR:
//   DIR/pg/          PostgreSQL 15 (initdb; loopback TCP and a unix socket; as the user nobody
//                    when run as root, since postgres refuses root)
//   DIR/state/       `coordinator init --store` (coordinator.json, TLS, enrolment tokens)
//   coord-0..N       `coordinator run` each: the first leads, the others are warm standbys;
//                    reached by the edges only (`--advertise`), not by devices
//   edge-0..M        `coordinator edge` each (stateless: check-ins, forwarding to the leader)
//   agg-0..K         `coordinator aggregator` each: the secure aggregation of the shards the
//                    leader hands out (sharded rounds only); reached by devices through the
//                    address the leader names in their tasks, not through HAProxy
//   DIR/haproxy.cfg  HAProxy in front of the edges (fedlora/common/haproxy_config.h); its port
//                    is the endpoint devices use (devices -> HAProxy -> edge -> leader)
//   DIR/cluster.json what runs (pids, ports, roles), for `cluster down` and operators
//   DIR/logs/        each process's stdout / stderr
// The process list is data (ClusterProcess): a new role is a few lines in PlanCluster, started
// in order and stopped in reverse like the others.
#ifndef FEDLORA_COORDINATOR_CLUSTER_H_
#define FEDLORA_COORDINATOR_CLUSTER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fedlora/common/haproxy_config.h"
#include "nlohmann/json.hpp"

namespace fedlora::coordinator {

struct ClusterSpec {
  std::string dir;
  std::string model;           // the base model folder for `coordinator init`
  std::string fedlora_binary;  // the CLI the coordinator processes run
  int standbys = 1;
  // Edge processes, HAProxy's backends. 0: HAProxy in front of the coordinators themselves
  // (devices reach the leader directly; the layout before edges existed).
  int edges = 2;
  // `coordinator aggregator` processes. They only work when rounds are sharded (the folder's
  // max_shard_size: shard_size below, or the sim's recipe); 0: the leader runs every session.
  int aggregators = 2;
  // `coordinator init --max-shard-size` on the first `up` (0: not passed, init's default of
  // one session per round). Sharding costs noise (each device's noise is calibrated to its
  // shard's minimum), so it is the operator's choice, not the cluster's default.
  int shard_size = 0;
  int port = 50051;  // HAProxy's, on 127.0.0.1: the devices' endpoint
  double lease_ttl_s = 10;
  std::vector<std::string> init_args;  // more `coordinator init` flags (first `up` only)
  std::string pg_bin;                  // "" = FEDLORA_PG_BIN or /usr/lib/postgresql/15/bin
  // Makes DIR/state on the first `up`, given the database's conninfo, instead of running
  // `coordinator init --store` with init_args (the simulator writes its own recipe with
  // CreateStateFolder). Empty: `coordinator init`.
  std::function<absl::Status(const std::string& conninfo)> init_state;
};

// One process of the cluster and how to tell it is ready.
struct ClusterProcess {
  std::string name;  // "postgres", "coord-0", "haproxy", ...
  std::string role;  // "database", "leader", "standby", "edge", "aggregator", "front"
  std::string binary;
  std::vector<std::string> args;
  bool unprivileged = false;  // as the user nobody when root (ChildProcess::StartUnprivileged)
  int ready_port = 0;         // ready once 127.0.0.1:ready_port accepts a connection, or
  std::string ready_line;     // once its stdout has a line containing this
  int listen_port = 0, metrics_port = 0;  // what it serves (0: nothing)
};

struct ClusterPlan {
  ClusterSpec spec;
  std::string pg_bin;
  int pg_port = 0;
  std::string conninfo;  // the population's database (no password: trust on loopback)
  std::vector<ClusterProcess> processes;  // started in this order, stopped in reverse
  HaproxyConfigSpec haproxy;
};

// The processes and ports of a cluster (free loopback ports picked now; HAProxy on spec.port):
// the database, the coordinators, the edges (HAProxy's backends, checked on their metrics
// /healthz; with no edges the coordinators are), the aggregators (not HAProxy's backends: the
// leader names them in devices' tasks), HAProxy.
// INVALID_ARGUMENT: empty dir or model, standbys, edges, aggregators or shard_size < 0, port
// outside 1..65535.
absl::StatusOr<ClusterPlan> PlanCluster(const ClusterSpec& spec);

// Starts the cluster of `plan` (initdb, createdb and `coordinator init --store` on the first
// `up` of DIR; later ones reuse DIR's database and state), writes DIR/cluster.json, calls
// `ready` with the summary, then supervises until `stop` returns true (a process that exits is
// reported through `log`, never restarted: killing the leader is the rehearsal) and stops
// everything in reverse order in bounded time (SIGTERM, SIGKILL after 10 s each).
// FAILED_PRECONDITION: a binary is missing (hint names `bash scripts/setup.sh test`), a
// cluster already runs in DIR, or a process did not become ready (its log's tail says why).
absl::Status RunCluster(const ClusterPlan& plan, const std::function<bool()>& stop,
                        const std::function<void(const nlohmann::json&)>& ready,
                        const std::function<void(const std::string&)>& log);

// The shards each aggregator process of a running cluster summed, by name, from its /metrics
// (`fedlora_aggregator_shards_total{outcome="summed"}`); `summary` is what RunCluster passed to
// `ready` (or DIR/cluster.json). Empty when it has no aggregators. UNAVAILABLE: one did not
// answer (it was killed, or stopped).
absl::StatusOr<std::map<std::string, int64_t>> AggregatorShardsSummed(
    const nlohmann::json& summary);

// Stops the cluster DIR/cluster.json describes: SIGTERM to its supervisor (which stops the
// rest), then to any process of it still running; SIGKILL after `seconds`. Returns what was
// stopped. NOT_FOUND: no cluster.json in DIR.
absl::StatusOr<nlohmann::json> StopCluster(const std::string& dir, double seconds = 30);

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_CLUSTER_H_
