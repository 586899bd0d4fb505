// `fedlora coordinator edge`: an edge process of a multi-host population (docs/coordinator.md,
// "Edge processes"). It serves the same fedlora.v1.Coordinator service as the leader, with the
// same TLS certificate, on the population's database: signature, replay and clock checks,
// Enroll, the adapter and release downloads and GetRelease itself; check-ins through EdgeRounds
// (edge_rounds.h): the rejections locally, sampled check-ins and every secure-aggregation
// call forwarded to the leader. Stateless: any number may run, sharing only the database.
//
//   auto edge = EdgeServer::Start({.state_dir = "coord", .listen = "0.0.0.0:50061"});
//   ... edge->Shutdown();
#ifndef FEDLORA_COORDINATOR_EDGE_SERVER_H_
#define FEDLORA_COORDINATOR_EDGE_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "fedlora/coordinator/edge_rounds.h"
#include "fedlora/coordinator/grpc_service.h"

namespace fedlora::coordinator {

struct EdgeServerOptions {
  std::string state_dir;  // a multi-host folder (`coordinator init --store`)
  std::string listen = "127.0.0.1:50061";  // port 0 picks one
  bool insecure = false;  // plaintext, loopback only
  std::string tls_cert, tls_key;  // default <state>/tls/server.pem, server.key
  std::string metrics_listen;     // "" = off
  ServiceLimits limits;
  EdgeRoundsOptions rounds;  // leader_roots_pem "" = <state>/tls/ca.pem
};

class EdgeServer {
 public:
  // FAILED_PRECONDITION for a single-host (SQLite) folder, with the hint; the store's, TLS and
  // listening errors as CoordinatorServer::Start's.
  static absl::StatusOr<std::unique_ptr<EdgeServer>> Start(EdgeServerOptions options);
  ~EdgeServer();

  int port() const { return port_; }
  int metrics_port() const;
  MetricsRegistry& metrics() { return *metrics_; }
  EdgeRounds& rounds() { return *rounds_; }
  // Stops polling and serving (calls waiting on the leader are cancelled within 2 s), writes
  // the kept release reports.
  void Shutdown();

 private:
  EdgeServer() = default;
  struct Parts;
  std::unique_ptr<Parts> parts_;
  std::unique_ptr<MetricsRegistry> metrics_;
  std::unique_ptr<EdgeRounds> rounds_;
  int port_ = 0;
};

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_EDGE_SERVER_H_
