// The fedlora.v1.Coordinator gRPC service (callback API): authenticates every call (Ed25519
// call signatures, replay guard), enforces per-method size limits, counts bytes and errors in
// the metrics, and forwards check-ins and secure-aggregation calls to its round side
// (round_backend.h): the RoundManager in a coordinator, EdgeRounds in an edge process.
// Enrolment, the adapter and release downloads and GetRelease are served here directly from the
// store.
//
// Every method is registered raw: gRPC hands over the request's bytes, and the
// service refuses a request longer than its method's limit before parsing it, then parses it
// itself. Secure-aggregation uploads (up to 64 MiB) are parsed only once the call's metadata
// names an enrolled, unrevoked device with a timestamp inside the clock window; the signature
// is checked after parsing (it covers the message's bytes).
//
// Status codes a caller sees: UNAUTHENTICATED (missing/bad signature, unknown device, clock
// skew, replay), PERMISSION_DENIED (revoked device, not in the round, unknown or used token),
// INVALID_ARGUMENT (oversized request: "too large ... refused before parsing"; bytes that are
// not the method's message: "request body is not a valid fedlora.v1.X (failed to parse)";
// malformed fields), FAILED_PRECONDITION (wrong phase or round), RESOURCE_EXHAUSTED (too many
// downloads; too many failed enrolments from one address), NOT_FOUND (unknown adapter or
// release version), plus the secure-aggregation server's rejection codes.
#ifndef FEDLORA_COORDINATOR_GRPC_SERVICE_H_
#define FEDLORA_COORDINATOR_GRPC_SERVICE_H_

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "fedlora/coordinator/metrics.h"
#include "fedlora/coordinator/peer_rate_limiter.h"
#include "fedlora/coordinator/replay_guard.h"
#include "fedlora/coordinator/round_backend.h"
#include "fedlora/coordinator/round_manager.h"
#include "fedlora/coordinator/store.h"
#include "fedlora/proto/fedlora_v1.grpc.pb.h"

namespace fedlora::coordinator {

struct ServiceLimits {
  size_t small_message_bytes = 4096;        // Enroll, CheckIn, GetRelease, Download requests
  size_t secagg_message_bytes = 64u << 20;  // one secure-aggregation message
  uint32_t chunk_bytes = 256u << 10;        // default and maximum download chunk
  int max_downloads_per_device = 2;
  int max_downloads = 256;
  absl::Duration download_timeout = absl::Seconds(120);  // a stalled reader is cancelled
  int64_t clock_window_ms = ReplayGuard::kDefaultWindowMs;
  // Enroll calls per peer address (PeerKey): a burst, then a steady rate; a successful
  // enrolment gives its token back, so only refused ones (bad or used tokens) count.
  RateLimit enroll_rate;
  // Transport (coordinator_server.h): concurrent streams per connection, the time a new
  // connection has to finish its TLS/HTTP2 handshake, and gRPC's memory for all calls
  // (0 = half of RAM, at least 512 MiB).
  int max_streams_per_connection = 32;
  absl::Duration handshake_timeout = absl::Seconds(20);
  size_t memory_quota_bytes = 0;
  // GetRelease's reports (what each device runs) are written to the store in one batch this
  // often, not one fsync'd write per call (release_reports.h).
  absl::Duration release_report_interval = absl::Seconds(1);
};

grpc::Status ToGrpcStatus(const absl::Status& s);

namespace internal {
template <class Request, class Response>
class UnaryCall;
class BlobCache;
class ReleaseReportLog;
// Every method takes the request's bytes (raw callback methods).
using RawCoordinatorService =
    v1::Coordinator::WithRawCallbackMethod_Enroll<v1::Coordinator::WithRawCallbackMethod_CheckIn<
        v1::Coordinator::WithRawCallbackMethod_DownloadAdapter<
            v1::Coordinator::WithRawCallbackMethod_AdvertiseKeys<
                v1::Coordinator::WithRawCallbackMethod_ShareKeys<
                    v1::Coordinator::WithRawCallbackMethod_MaskedInput<
                        v1::Coordinator::WithRawCallbackMethod_Unmasking<
                            v1::Coordinator::WithRawCallbackMethod_GetRelease<
                                v1::Coordinator::WithRawCallbackMethod_DownloadRelease<
                                    v1::Coordinator::CallbackService>>>>>>>>>;
}  // namespace internal

class CoordinatorService final : public internal::RawCoordinatorService {
 public:
  // All pointers must outlive the service. The first form serves `rounds` (ManagerRounds).
  CoordinatorService(RoundManager* rounds, Store* store, MetricsRegistry* metrics,
                     const ServiceLimits& limits, std::string coordinator_id);
  CoordinatorService(RoundBackend* rounds, Store* store, MetricsRegistry* metrics,
                     const ServiceLimits& limits, std::string coordinator_id);
  ~CoordinatorService() override;

  using Raw = grpc::ByteBuffer;
  grpc::ServerUnaryReactor* Enroll(grpc::CallbackServerContext* ctx, const Raw* request,
                                   Raw* response) override;
  grpc::ServerUnaryReactor* CheckIn(grpc::CallbackServerContext* ctx, const Raw* request,
                                    Raw* response) override;
  grpc::ServerWriteReactor<Raw>* DownloadAdapter(grpc::CallbackServerContext* ctx,
                                                 const Raw* request) override;
  grpc::ServerUnaryReactor* AdvertiseKeys(grpc::CallbackServerContext* ctx, const Raw* request,
                                          Raw* response) override;
  grpc::ServerUnaryReactor* ShareKeys(grpc::CallbackServerContext* ctx, const Raw* request,
                                      Raw* response) override;
  grpc::ServerUnaryReactor* MaskedInput(grpc::CallbackServerContext* ctx, const Raw* request,
                                        Raw* response) override;
  grpc::ServerUnaryReactor* Unmasking(grpc::CallbackServerContext* ctx, const Raw* request,
                                      Raw* response) override;
  // Keeps the device's release report (written to the store behind the call, in batches:
  // limits.release_report_interval), answers release_rollout.h's decision.
  grpc::ServerUnaryReactor* GetRelease(grpc::CallbackServerContext* ctx, const Raw* request,
                                       Raw* response) override;
  grpc::ServerWriteReactor<Raw>* DownloadRelease(grpc::CallbackServerContext* ctx,
                                                 const Raw* request) override;

  // Cancels downloads running longer than limits.download_timeout (a client that opened a
  // stream and never reads). Called periodically by the server.
  void SweepStalledDownloads();
  // Writes the release reports kept so far to the store now (tests, shutdown).
  absl::Status FlushReleaseReports();

  // What a signed call's metadata says, checked without looking at the body.
  struct CallMetadata {
    std::string device_id;
    int64_t call_ms = 0;
    std::string nonce;
    std::string signature;
    std::string public_key;
    std::string time_text, nonce_hex, signature_hex;  // as received (forwarded by edges)
  };
  // The metadata is present and well-formed, names an enrolled device that is not revoked,
  // and its time is inside the clock window and not before this process started. Cheap (one
  // store read, no signature check, nothing remembered): run before parsing a large body.
  // UNAUTHENTICATED or PERMISSION_DENIED (revoked) as for Authenticate.
  absl::StatusOr<CallMetadata> CheckCallMetadata(grpc::CallbackServerContext* ctx);
  // Verifies the call's signature metadata over `method` and `request`; returns the device id.
  // Also returns, through `body_sha256` when given, the SHA-256 of the request's bytes.
  absl::StatusOr<std::string> Authenticate(grpc::CallbackServerContext* ctx,
                                           const std::string& method,
                                           const google::protobuf::MessageLite& request,
                                           std::string* body_sha256 = nullptr);

 private:
  class DownloadReactor;
  using SecAggCallData = internal::UnaryCall<v1::SecAggUpload, v1::SecAggDownload>;
  grpc::ServerUnaryReactor* SecAggCall(grpc::CallbackServerContext* ctx, const char* method,
                                       secagg::Phase phase, const Raw* request, Raw* response);
  // Counts the error and finishes `call` with it.
  template <class Call>
  grpc::ServerUnaryReactor* Refuse(Call* call, const char* method, const absl::Status& s);
  grpc::ServerUnaryReactor* Refuse(grpc::CallbackServerContext* ctx, const char* method,
                                   const absl::Status& s);
  // Verifies the signature of a call whose metadata CheckCallMetadata accepted.
  absl::StatusOr<std::string> VerifyCall(const CallMetadata& md, const std::string& method,
                                         const google::protobuf::MessageLite& request,
                                         std::string* body_sha256);
  void CountError(const char* method, const absl::Status& s);
  // The call as the device sent it, for the round side (round_backend.h).
  static SignedCall Signed(grpc::CallbackServerContext* ctx, const CallMetadata& md,
                           const char* method, const Raw& request);
  void DownloadFinished(DownloadReactor* reactor, const std::string& device);
  // Takes one of the device's and one of the total download slots, or fails with
  // RESOURCE_EXHAUSTED; checked before anything is read from the store.
  absl::Status ReserveDownload(const std::string& device);
  void ReleaseDownload(const std::string& device);
  void UpdateCacheGauge();
  // Under the download limits (checked first), finds the blob's SHA-256 with `find_sha256`,
  // takes the blob from the shared cache (read from the store and verified once per blob) and
  // streams it from the request's offset.
  grpc::ServerWriteReactor<Raw>* StartDownload(
      grpc::CallbackServerContext* ctx, const char* method, const std::string& device,
      const v1::DownloadRequest& request,
      const std::function<absl::StatusOr<std::string>()>& find_sha256);

  std::unique_ptr<RoundBackend> own_rounds_;  // the first constructor's ManagerRounds
  RoundBackend* rounds_;
  Store* store_;
  MetricsRegistry* metrics_;
  ServiceLimits limits_;
  std::string coordinator_id_;
  ReplayGuard replay_;
  PeerRateLimiter enroll_limiter_;
  std::unique_ptr<internal::BlobCache> blobs_;  // what running downloads serve, shared
  std::unique_ptr<internal::ReleaseReportLog> reports_;  // GetRelease's, written behind
  std::mutex downloads_mu_;
  int downloads_active_ = 0;  // reserved slots (streams running or starting)
  std::map<std::string, int> downloads_per_device_;
  std::map<DownloadReactor*, std::pair<grpc::CallbackServerContext*, absl::Time>> downloads_;
};

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_GRPC_SERVICE_H_
