// `fedlora coordinator aggregator`: an aggregator process of a multi-host population
// (docs/coordinator.md, "Aggregator processes"). On the population's database it registers its
// address and renews a heartbeat every `heartbeat` (process_registry.h), and serves on one
// port, with the state folder's TLS certificate:
//   - fedlora.v1.Coordinator's four secure-aggregation methods for the devices of the shards it
//     runs, through CoordinatorService (the same signature, replay and clock checks as the
//     leader; the other methods answer as an edge's would, check-ins are refused);
//   - fedlora.v1.Aggregator/RunShard for the leader: refused UNAUTHENTICATED unless it carries
//     the leader's MAC under the folder's cluster key (cluster_key.h; checked first, before
//     anything is read or started), FAILED_PRECONDITION "fenced" unless its epoch is the
//     population's current lease epoch; then AggregatorRounds runs the shard and the call is
//     answered with its sum when the shard ends.
#ifndef FEDLORA_COORDINATOR_AGGREGATOR_SERVER_H_
#define FEDLORA_COORDINATOR_AGGREGATOR_SERVER_H_

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "fedlora/coordinator/aggregator_rounds.h"
#include "fedlora/coordinator/grpc_service.h"

namespace fedlora::coordinator {

struct AggregatorServerOptions {
  std::string state_dir;                   // a multi-host folder (`coordinator init --store`)
  std::string listen = "127.0.0.1:50071";  // port 0 picks one
  std::string advertise;          // the address devices and the leader dial ("" = from listen)
  bool insecure = false;          // plaintext, loopback only
  std::string tls_cert, tls_key;  // default <state>/tls/server.pem, server.key
  std::string metrics_listen;     // "" = off
  std::string population = "global";
  std::chrono::milliseconds heartbeat{1000};
  ServiceLimits limits;
};

class AggregatorServer {
 public:
  // FAILED_PRECONDITION for a single-host (SQLite) folder or one without a cluster key
  // (ReadClusterKey's hint); the store's, TLS and listening errors as EdgeServer::Start's.
  static absl::StatusOr<std::unique_ptr<AggregatorServer>> Start(AggregatorServerOptions options);
  ~AggregatorServer();

  int port() const { return port_; }
  const std::string& address() const { return address_; }
  int metrics_port() const;
  MetricsRegistry& metrics() { return *metrics_; }
  AggregatorRounds& rounds() { return *rounds_; }
  // Unregisters, stops serving; shards still running end (their RunShard calls fail ABORTED).
  void Shutdown();

 private:
  AggregatorServer() = default;
  struct Parts;
  std::unique_ptr<Parts> parts_;
  std::unique_ptr<MetricsRegistry> metrics_;
  std::unique_ptr<AggregatorRounds> rounds_;
  int port_ = 0;
  std::string address_;
};

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_AGGREGATOR_SERVER_H_
