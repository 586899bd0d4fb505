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
  // gRPC and metrics port; HAProxy checks /healthz on the metrics port.
  plan.haproxy.listen_port = spec.port;
  for (int i = 0; i <= spec.standbys; ++i) {
    const std::string name = absl::StrCat("coord-", i);
    const int port = PickFreeLoopbackPort(), metrics = PickFreeLoopbackPort();
    plan.processes.push_back(
        {name,
         i == 0 ? "leader" : "standby",
         spec.fedlora_binary,
         {"coordinator", "run", "--state", spec.dir + "/state", "--listen",
          absl::StrCat("127.0.0.1:", port), "--metrics", absl::StrCat("127.0.0.1:", metrics),
          "--holder", name, "--lease-ttl", absl::StrCat(spec.lease_ttl_s)},
         false,
         0,
         i == 0 ? "listening on" : "standby:",
         port,
         metrics});
    plan.haproxy.backends.push_back({name, "127.0.0.1", port, metrics});
  }
  // Issue 30's edges and aggregators go here: each a ClusterProcess (role "edge" /
  // "aggregator"), edges as HAProxy's backends instead of the coordinators.
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
