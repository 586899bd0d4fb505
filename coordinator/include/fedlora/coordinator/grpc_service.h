// The fedlora.v1.Coordinator gRPC service (callback API): authenticates every call (Ed25519
// call signatures, replay guard), enforces per-method size limits, counts bytes and errors in
// the metrics, and forwards to the RoundManager. Enrolment and the adapter download are served
// here directly from the store.
//
// Status codes a caller sees: UNAUTHENTICATED (missing/bad signature, unknown device, clock
// skew, replay), PERMISSION_DENIED (revoked device, not in the round), INVALID_ARGUMENT
// (malformed or oversized request, bad token), FAILED_PRECONDITION (wrong phase or round),
// RESOURCE_EXHAUSTED (too many downloads), NOT_FOUND (unknown adapter or release version),
// plus the secure-aggregation server's rejection codes.
#ifndef FEDLORA_COORDINATOR_GRPC_SERVICE_H_
#define FEDLORA_COORDINATOR_GRPC_SERVICE_H_

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "fedlora/coordinator/metrics.h"
#include "fedlora/coordinator/replay_guard.h"
#include "fedlora/coordinator/round_manager.h"
#include "fedlora/coordinator/store.h"
#include "fedlora/proto/fedlora_v1.grpc.pb.h"

namespace fedlora::coordinator {

struct ServiceLimits {
  size_t small_message_bytes = 4096;        // Enroll, CheckIn, Download requests
  size_t secagg_message_bytes = 64u << 20;  // one secure-aggregation message
  uint32_t chunk_bytes = 256u << 10;        // default and maximum download chunk
  int max_downloads_per_device = 2;
  int max_downloads = 256;
  absl::Duration download_timeout = absl::Seconds(120);  // a stalled reader is cancelled
  int64_t clock_window_ms = ReplayGuard::kDefaultWindowMs;
};

grpc::Status ToGrpcStatus(const absl::Status& s);

class CoordinatorService final : public v1::Coordinator::CallbackService {
 public:
  // All pointers must outlive the service.
  CoordinatorService(RoundManager* rounds, Store* store, MetricsRegistry* metrics,
                     const ServiceLimits& limits, std::string coordinator_id);
  ~CoordinatorService() override;

  grpc::ServerUnaryReactor* Enroll(grpc::CallbackServerContext* ctx,
                                   const v1::EnrollRequest* request,
                                   v1::EnrollResponse* response) override;
  grpc::ServerUnaryReactor* CheckIn(grpc::CallbackServerContext* ctx,
                                    const v1::CheckInRequest* request,
                                    v1::CheckInResponse* response) override;
  grpc::ServerWriteReactor<v1::AdapterChunk>* DownloadAdapter(
      grpc::CallbackServerContext* ctx, const v1::DownloadRequest* request) override;
  grpc::ServerUnaryReactor* AdvertiseKeys(grpc::CallbackServerContext* ctx,
                                          const v1::SecAggUpload* request,
                                          v1::SecAggDownload* response) override;
  grpc::ServerUnaryReactor* ShareKeys(grpc::CallbackServerContext* ctx,
                                      const v1::SecAggUpload* request,
                                      v1::SecAggDownload* response) override;
  grpc::ServerUnaryReactor* MaskedInput(grpc::CallbackServerContext* ctx,
                                        const v1::SecAggUpload* request,
                                        v1::SecAggDownload* response) override;
  grpc::ServerUnaryReactor* Unmasking(grpc::CallbackServerContext* ctx,
                                      const v1::SecAggUpload* request,
                                      v1::SecAggDownload* response) override;
  // Records the device's release report in the store, answers release_rollout.h's decision.
  grpc::ServerUnaryReactor* GetRelease(grpc::CallbackServerContext* ctx,
                                       const v1::ReleaseRequest* request,
                                       v1::ReleaseOffer* response) override;
  grpc::ServerWriteReactor<v1::AdapterChunk>* DownloadRelease(
      grpc::CallbackServerContext* ctx, const v1::DownloadRequest* request) override;

  // Cancels downloads running longer than limits.download_timeout (a client that opened a
  // stream and never reads). Called periodically by the server.
  void SweepStalledDownloads();

  // Verifies the call's signature metadata over `method` and `request`; returns the device id.
  // Also returns, through `body_sha256` when given, the SHA-256 of the request's bytes.
  absl::StatusOr<std::string> Authenticate(grpc::CallbackServerContext* ctx,
                                           const std::string& method,
                                           const google::protobuf::MessageLite& request,
                                           std::string* body_sha256 = nullptr);

 private:
  class DownloadReactor;
  grpc::ServerUnaryReactor* SecAggCall(grpc::CallbackServerContext* ctx, const char* method,
                                       secagg::Phase phase, const v1::SecAggUpload* request,
                                       v1::SecAggDownload* response);
  grpc::ServerUnaryReactor* Refuse(grpc::CallbackServerContext* ctx, const char* method,
                                   const absl::Status& s);
  void CountError(const char* method, const absl::Status& s);
  void DownloadFinished(DownloadReactor* reactor, const std::string& device);
  // Streams `blob` (hash `sha256_hex`) from the request's offset, under the download limits.
  grpc::ServerWriteReactor<v1::AdapterChunk>* StartDownload(grpc::CallbackServerContext* ctx,
                                                            const char* method,
                                                            const std::string& device,
                                                            const v1::DownloadRequest* request,
                                                            std::string blob,
                                                            const std::string& sha256_hex);

  RoundManager* rounds_;
  Store* store_;
  MetricsRegistry* metrics_;
  ServiceLimits limits_;
  std::string coordinator_id_;
  ReplayGuard replay_;
  std::mutex downloads_mu_;
  std::map<std::string, int> downloads_per_device_;
  std::map<DownloadReactor*, std::pair<grpc::CallbackServerContext*, absl::Time>> downloads_;
};

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_GRPC_SERVICE_H_
