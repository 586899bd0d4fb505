// The round side of the gRPC service (grpc_service.h): what CoordinatorService hands an
// authenticated CheckIn or secure-aggregation call to. The leader's is its RoundManager
// (ManagerRounds); an edge process's is EdgeRounds (edge_rounds.h), which answers what it can
// from the published selection window and forwards the rest to the leader as the device's own
// signed call (SignedCall: the request's bytes and its signature metadata), so the leader
// verifies the device itself and trusts no edge.
#ifndef FEDLORA_COORDINATOR_ROUND_BACKEND_H_
#define FEDLORA_COORDINATOR_ROUND_BACKEND_H_

#include <grpcpp/support/byte_buffer.h>

#include <chrono>
#include <string>

#include "fedlora/coordinator/round_manager.h"

namespace fedlora::coordinator {

// An authenticated call as the device sent it.
struct SignedCall {
  std::string device_id;
  std::string method;  // "/fedlora.v1.Coordinator/CheckIn" etc.
  grpc::ByteBuffer request;  // the request's bytes (a reference, not a copy)
  // The call-signature metadata as received (x-fedlora-device, -time-ms, -nonce, -signature).
  std::string time_ms, nonce_hex, signature_hex;
  std::chrono::system_clock::time_point deadline;  // the device's deadline for the call
};

class RoundBackend {
 public:
  virtual ~RoundBackend() = default;
  virtual void CheckIn(const SignedCall& call, const v1::CheckInRequest& request,
                       RoundManager::CheckInDone done) = 0;
  // `digest`: the SHA-256 of the request's bytes (an identical retry is recognised by it).
  virtual void SecAgg(const SignedCall& call, secagg::Phase phase, const v1::SecAggUpload& upload,
                      const std::string& digest, RoundManager::SecAggDone done) = 0;
};

// The leader's (and a single-host coordinator's) round side: the RoundManager.
class ManagerRounds final : public RoundBackend {
 public:
  explicit ManagerRounds(RoundManager* rounds) : rounds_(rounds) {}
  void CheckIn(const SignedCall& call, const v1::CheckInRequest& request,
               RoundManager::CheckInDone done) override {
    rounds_->CheckIn(call.device_id, request, std::move(done));
  }
  void SecAgg(const SignedCall& call, secagg::Phase phase, const v1::SecAggUpload& upload,
              const std::string& digest, RoundManager::SecAggDone done) override {
    rounds_->SecAgg(call.device_id, phase, upload, digest, std::move(done));
  }

 private:
  RoundManager* rounds_;
};

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_ROUND_BACKEND_H_
