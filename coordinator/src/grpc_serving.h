// How a coordinator and an edge process serve fedlora.v1.Coordinator: TLS with the state
// folder's certificate (or plaintext on loopback), the message size and transport limits of
// ServiceLimits, the health and reflection services.
#ifndef FEDLORA_COORDINATOR_SRC_GRPC_SERVING_H_
#define FEDLORA_COORDINATOR_SRC_GRPC_SERVING_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "fedlora/coordinator/grpc_service.h"

namespace fedlora::coordinator::internal {

absl::StatusOr<std::pair<std::string, int>> SplitHostPort(const std::string& s);

// FAILED_PRECONDITION unless plaintext (`insecure`) is asked for a loopback `listen` only.
absl::Status CheckPlaintextAllowed(bool insecure, const std::string& listen);

// Starts serving `service` on `listen` (port 0 picks one; the bound port in *port). TLS from
// `tls_cert`/`tls_key` (default <state_dir>/tls/server.pem, server.key) unless `insecure`.
// FAILED_PRECONDITION for plaintext off loopback, NOT_FOUND for missing TLS files, UNAVAILABLE
// when the port cannot be bound. `extra`: another service on the same port (an aggregator's
// fedlora.v1.Aggregator).
absl::StatusOr<std::unique_ptr<grpc::Server>> StartCoordinatorGrpc(
    const std::string& state_dir, const std::string& listen, bool insecure,
    const std::string& tls_cert, const std::string& tls_key, const ServiceLimits& limits,
    grpc::Service* service, int* port, grpc::Service* extra = nullptr);

}  // namespace fedlora::coordinator::internal

#endif  // FEDLORA_COORDINATOR_SRC_GRPC_SERVING_H_
