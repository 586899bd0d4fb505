// The coordinator side of `fedlora sim --transport grpc`: one `coordinator run` process on
// loopback TLS (the default), or, with grpc.cluster = true, a local multi-host cluster started
// by coordinator/cluster.h (PostgreSQL, a leader, grpc.standbys standbys, grpc.edges edges,
// grpc.aggregators aggregators and HAProxy, each its own process) that the devices reach through
// HAProxy. Either way the state folder holds the simulator's own recipe (CreateStateFolder), and
// the processes are stopped when this object goes (SIGTERM, as `cluster down` does).
#ifndef FEDLORA_SIM_SRC_SIM_COORDINATOR_H_
#define FEDLORA_SIM_SRC_SIM_COORDINATOR_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "fedlora/coordinator/state_folder.h"
#include "fedlora/sim/sim_config.h"

namespace fedlora::sim {

class SimCoordinator {
 public:
  // `spec.state_dir` is ignored: the folder is <work>/coordinator (one process) or
  // <cluster dir>/state (a cluster).
  static absl::StatusOr<std::unique_ptr<SimCoordinator>> Start(const SimConfig& config,
                                                               const std::string& fedlora_binary,
                                                               const std::string& work,
                                                               coordinator::StateFolderSpec spec);
  virtual ~SimCoordinator() = default;

  virtual const std::string& address() const = 0;  // where devices connect (HOST:PORT)
  virtual const coordinator::StateFolderInfo& folder() const = 0;
  virtual const std::string& state_dir() const = 0;
  // What runs, for the summary's engine line, e.g. "a cluster over gRPC: PostgreSQL, leader
  // coord-0, standby coord-1, edges edge-0 edge-1, HAProxy 127.0.0.1:P (real clock)".
  virtual std::string Description() const = 0;
  // The shards each aggregator process has summed so far, by name (empty: none runs; one
  // process, or grpc.aggregators = 0). UNAVAILABLE when one does not answer.
  virtual absl::StatusOr<std::map<std::string, int64_t>> AggregatorShards() const {
    return std::map<std::string, int64_t>();
  }
  // Stops every process; an error when one did not stop cleanly (its log named).
  virtual absl::Status Stop() = 0;
};

}  // namespace fedlora::sim

#endif  // FEDLORA_SIM_SRC_SIM_COORDINATOR_H_
