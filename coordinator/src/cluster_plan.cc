// PlanCluster: the processes of `fedlora cluster up` and their ports (cluster.h).
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/net_address.h"
#include "fedlora/coordinator/cluster.h"
#include "fedlora/coordinator/state_folder.h"

namespace fedlora::coordinator {
namespace {

// A unix socket path is limited to 107 bytes; past that the server listens on TCP only.
constexpr size_t kMaxSocketPath = 100;

}  // namespace

absl::StatusOr<ClusterPlan> PlanCluster(const ClusterSpec& spec) {
  if (spec.dir.empty()) return absl::InvalidArgumentError("cluster: --dir is required");
  if (spec.model.empty()) return absl::InvalidArgumentError("cluster: --model is required");
  if (spec.standbys < 0) {
    return absl::InvalidArgumentError("cluster: --standbys must be 0 or more");
  }
  if (spec.edges < 0) return absl::InvalidArgumentError("cluster: --edges must be 0 or more");
  if (spec.aggregators < 0) {
    return absl::InvalidArgumentError("cluster: --aggregators must be 0 or more");
  }
  if (spec.shard_size < 0) {
    return absl::InvalidArgumentError("cluster: --shard-size must be 0 or more");
  }
  if (spec.port < 1 || spec.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("cluster: --port ", spec.port, " is outside 1..65535"));
  }
  ClusterPlan plan;
  plan.spec = spec;
  plan.pg_bin = spec.pg_bin;
  if (plan.pg_bin.empty()) {
    const char* env = std::getenv("FEDLORA_PG_BIN");
    plan.pg_bin = env && *env ? env : "/usr/lib/postgresql/15/bin";
  }
  const std::string pg_dir = spec.dir + "/pg";
  // A later `up` of DIR keeps the database's port: DIR/state/store names it.
  if (auto text = ReadFileToString(spec.dir + "/state/" + kStoreFile); text.ok()) {
    const size_t at = text->find("port=");
    const size_t end = at == std::string::npos ? at : text->find_first_of(" \n", at);
    if (at == std::string::npos ||
        !absl::SimpleAtoi(text->substr(at + 5, end == std::string::npos ? end : end - at - 5),
                          &plan.pg_port)) {
      return absl::FailedPreconditionError(
          absl::StrCat("cluster: ", spec.dir, "/state/", kStoreFile,
                       " names no port= (it was not made by "
                       "`fedlora cluster up`; hint: pick another --dir)"));
    }
  } else {
    plan.pg_port = PickFreeLoopbackPort();
  }
  plan.conninfo =
      absl::StrCat("host=127.0.0.1 port=", plan.pg_port, " user=fedlora dbname=fedlora");
  const std::string socket_dir =
      (pg_dir + "/.s.PGSQL.65535").size() <= kMaxSocketPath ? pg_dir : "";
  plan.processes.push_back({"postgres",
                            "database",
                            plan.pg_bin + "/postgres",
                            {"-D", pg_dir + "/data", "-k", socket_dir, "-h", "127.0.0.1", "-p",
                             std::to_string(plan.pg_port), "-c", "shared_buffers=32MB", "-c",
                             "dynamic_shared_memory_type=mmap"},
                            /*unprivileged=*/true,
                            plan.pg_port,
                            "",
                            plan.pg_port,
                            0});
  // Coordinators: the first to start leads; the others wait as standbys. Each has its own
  // gRPC and metrics port. With edges, only the edges reach them: each advertises its own
  // address in the selection window it publishes once it leads, and edges follow it.
  plan.haproxy.listen_port = spec.port;
  std::vector<HaproxyBackend> coordinators;
  for (int i = 0; i <= spec.standbys; ++i) {
    const std::string name = absl::StrCat("coord-", i);
    const int port = PickFreeLoopbackPort(), metrics = PickFreeLoopbackPort();
    const std::string listen = absl::StrCat("127.0.0.1:", port);
    plan.processes.push_back({name,
                              i == 0 ? "leader" : "standby",
                              spec.fedlora_binary,
                              {"coordinator", "run", "--state", spec.dir + "/state", "--listen",
                               listen, "--advertise", listen, "--metrics",
                               absl::StrCat("127.0.0.1:", metrics), "--holder", name,
                               "--lease-ttl", absl::StrCat(spec.lease_ttl_s)},
                              false,
                              0,
                              i == 0 ? "listening on" : "standby:",
                              port,
                              metrics});
    coordinators.push_back({name, "127.0.0.1", port, metrics});
  }
  // Edges: stateless, ready once serving; HAProxy checks /healthz on each metrics port. An
  // edge killed is marked down within fall * inter and its devices' retries go to another.
  for (int i = 0; i < spec.edges; ++i) {
    const std::string name = absl::StrCat("edge-", i);
    const int port = PickFreeLoopbackPort(), metrics = PickFreeLoopbackPort();
    plan.processes.push_back({name,
                              "edge",
                              spec.fedlora_binary,
                              {"coordinator", "edge", "--state", spec.dir + "/state", "--listen",
                               absl::StrCat("127.0.0.1:", port), "--metrics",
                               absl::StrCat("127.0.0.1:", metrics)},
                              false,
                              0,
                              "listening on",
                              port,
                              metrics});
    plan.haproxy.backends.push_back({name, "127.0.0.1", port, metrics});
  }
  // Aggregators: started once a leader runs (they register in its database; the leader reads
  // the live ones every 500 ms), before HAProxy lets devices in. Not HAProxy's backends: the
  // leader names one in each device's task and the device dials it directly. Ready once
  // registered (the line `coordinator aggregator` prints after its first heartbeat).
  for (int i = 0; i < spec.aggregators; ++i) {
    const std::string name = absl::StrCat("agg-", i);
    const int port = PickFreeLoopbackPort(), metrics = PickFreeLoopbackPort();
    const std::string listen = absl::StrCat("127.0.0.1:", port);
    plan.processes.push_back(
        {name,
         "aggregator",
         spec.fedlora_binary,
         {"coordinator", "aggregator", "--state", spec.dir + "/state", "--listen", listen,
          "--advertise", listen, "--metrics", absl::StrCat("127.0.0.1:", metrics)},
         false,
         0,
         "registered as",
         port,
         metrics});
  }
  if (spec.edges == 0) {
    plan.haproxy.backends = coordinators;
  } else {
    plan.haproxy.balance = "leastconn";
  }
  plan.processes.push_back({"haproxy",
                            "front",
                            HaproxyBinary(),
                            {"-f", spec.dir + "/haproxy.cfg", "-db"},
                            false,
                            spec.port,
                            "",
                            spec.port,
                            0});
  return plan;
}

}  // namespace fedlora::coordinator
