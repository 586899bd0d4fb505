#include "fedlora/coordinator/grpc_service.h"

#include <chrono>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "fedlora/common/call_signature.h"
#include "fedlora/common/ed25519.h"
#include "fedlora/common/encoding.h"
#include "fedlora/common/proto_bytes.h"
#include "fedlora/common/random.h"
#include "fedlora/coordinator/release_rollout.h"
#include "blob_cache.h"
#include "release_reports.h"
#include "raw_call.h"

namespace fedlora::coordinator {
namespace {

constexpr char kService[] = "/fedlora.v1.Coordinator/";

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Method(const char* name) { return absl::StrCat(kService, name); }

absl::StatusOr<std::string> Metadata(grpc::CallbackServerContext* ctx, const char* key) {
  const auto& md = ctx->client_metadata();
  auto it = md.find(key);
  if (it == md.end()) {
    return absl::UnauthenticatedError(
        absl::StrCat("missing call metadata ", key, " (hint: every call after Enroll is signed "
                     "with the device key; enroll the device first)"));
  }
  if (it->second.size() > 256) return absl::UnauthenticatedError(absl::StrCat(key, " too long"));
  return std::string(it->second.data(), it->second.size());
}

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

CoordinatorService::CoordinatorService(RoundManager* rounds, Store* store,
                                       MetricsRegistry* metrics, const ServiceLimits& limits,
                                       std::string coordinator_id)
    : CoordinatorService(static_cast<RoundBackend*>(nullptr), store, metrics, limits,
                         std::move(coordinator_id)) {
  own_rounds_ = std::make_unique<ManagerRounds>(rounds);
  rounds_ = own_rounds_.get();
}

CoordinatorService::CoordinatorService(RoundBackend* rounds, Store* store,
                                       MetricsRegistry* metrics, const ServiceLimits& limits,
                                       std::string coordinator_id)
    : rounds_(rounds),
      store_(store),
      metrics_(metrics),
      limits_(limits),
      coordinator_id_(std::move(coordinator_id)),
      replay_(NowMs(), limits.clock_window_ms),
      enroll_limiter_(limits.enroll_rate),
      blobs_(std::make_unique<internal::BlobCache>()),
      reports_(
          std::make_unique<internal::ReleaseReportLog>(store, limits.release_report_interval)) {
  metrics_->DefineGauge("fedlora_download_cache_bytes",
                        "Bytes of adapter and release blobs held in memory for running downloads "
                        "(one shared copy per blob).");
  metrics_->DefineCounter("fedlora_download_blob_reads_total",
                          "Blobs read from the store (and verified) to serve downloads.");
}

CoordinatorService::~CoordinatorService() = default;

absl::Status CoordinatorService::FlushReleaseReports() { return reports_->Flush(); }

void CoordinatorService::CountError(const char* method, const absl::Status& s) {
  metrics_->Increment("fedlora_rpc_errors_total", {method, absl::StatusCodeToString(s.code())});
}

grpc::ServerUnaryReactor* CoordinatorService::Refuse(grpc::CallbackServerContext* ctx,
                                                     const char* method, const absl::Status& s) {
  CountError(method, s);
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

absl::StatusOr<CoordinatorService::CallMetadata> CoordinatorService::CheckCallMetadata(
    grpc::CallbackServerContext* ctx) {
  auto device = Metadata(ctx, kCallDeviceMetadataKey);
  if (!device.ok()) return device.status();
  auto time = Metadata(ctx, kCallTimeMetadataKey);
  if (!time.ok()) return time.status();
  auto nonce_hex = Metadata(ctx, kCallNonceMetadataKey);
  if (!nonce_hex.ok()) return nonce_hex.status();
  auto sig_hex = Metadata(ctx, kCallSignatureMetadataKey);
  if (!sig_hex.ok()) return sig_hex.status();
  CallMetadata md;
  md.device_id = *device;
  md.time_text = *time;
  md.nonce_hex = *nonce_hex;
  md.signature_hex = *sig_hex;
  if (!absl::SimpleAtoi(*time, &md.call_ms)) {
    return absl::UnauthenticatedError("x-fedlora-time-ms is not a decimal integer");
  }
  auto nonce = HexDecode(*nonce_hex);
  auto sig = HexDecode(*sig_hex);
  if (!nonce.ok() || !sig.ok()) return absl::UnauthenticatedError("nonce or signature is not hex");
  md.nonce = std::move(*nonce);
  md.signature = std::move(*sig);
  const int64_t now = NowMs();
  if (md.call_ms < now - replay_.window_ms() || md.call_ms > now + replay_.window_ms()) {
    return absl::UnauthenticatedError(absl::StrCat(
        "call time ", md.call_ms, " ms is ", (now - md.call_ms) / 1000,
        " s away from the coordinator's clock, more than the window of ",
        replay_.window_ms() / 1000, " s (hint: check the device clock)"));
  }
  auto record = store_->GetDevice(md.device_id);
  if (!record.ok()) {
    if (record.status().code() == absl::StatusCode::kNotFound) {
      return absl::UnauthenticatedError(absl::StrCat(
          "unknown device ", md.device_id, " (hint: enroll it with a token from the operator)"));
    }
    return record.status();
  }
  if (record->revoked) {
    return absl::PermissionDeniedError(
        absl::StrCat("device ", md.device_id, " is revoked: ", record->revoked_reason));
  }
  md.public_key = std::move(record->public_key);
  return md;
}

SignedCall CoordinatorService::Signed(grpc::CallbackServerContext* ctx, const CallMetadata& md,
                                      const char* method, const Raw& request) {
  SignedCall c;
  c.device_id = md.device_id;
  c.method = Method(method);
  c.request = request;
  c.time_ms = md.time_text;
  c.nonce_hex = md.nonce_hex;
  c.signature_hex = md.signature_hex;
  c.deadline = ctx->deadline();
  return c;
}

absl::StatusOr<std::string> CoordinatorService::VerifyCall(
    const CallMetadata& md, const std::string& method,
    const google::protobuf::MessageLite& request, std::string* body_sha256) {
  const std::string body = DeterministicBytes(request);
  absl::Status v = VerifyEd25519(
      md.public_key, CallSigningBytes(method, md.device_id, md.call_ms, md.nonce, body),
      md.signature);
  if (body_sha256) *body_sha256 = Sha256(body);
  if (!v.ok()) {
    return absl::UnauthenticatedError(
        absl::StrCat("bad call signature from device ", md.device_id, ": ", v.message()));
  }
  absl::Status r = replay_.Check(md.device_id, md.call_ms, md.nonce, NowMs());
  if (!r.ok()) return r;
  return md.device_id;
}

absl::StatusOr<std::string> CoordinatorService::Authenticate(
    grpc::CallbackServerContext* ctx, const std::string& method,
    const google::protobuf::MessageLite& request, std::string* body_sha256) {
  auto md = CheckCallMetadata(ctx);
  if (!md.ok()) return md.status();
  return VerifyCall(*md, method, request, body_sha256);
}

grpc::ServerUnaryReactor* CoordinatorService::CheckIn(grpc::CallbackServerContext* ctx,
                                                      const Raw* request, Raw* response) {
  auto* call = new internal::UnaryCall<v1::CheckInRequest, v1::CheckInResponse>(response);
  absl::Status parsed =
      internal::ParseRequest(*request, limits_.small_message_bytes, "CheckIn", &call->request);
  if (!parsed.ok()) return Refuse(call, "CheckIn", parsed);
  auto md = CheckCallMetadata(ctx);
  if (!md.ok()) return Refuse(call, "CheckIn", md.status());
  auto device = VerifyCall(*md, Method("CheckIn"), call->request, nullptr);
  if (!device.ok()) return Refuse(call, "CheckIn", device.status());
  metrics_->Increment("fedlora_bytes_received_total", {"CheckIn"}, request->Length());
  rounds_->CheckIn(Signed(ctx, *md, "CheckIn", *request), call->request,
                   [this, call](absl::Status s, v1::CheckInResponse reply) {
                     if (s.ok()) {
                       call->response = std::move(reply);
                       metrics_->Increment("fedlora_bytes_sent_total", {"CheckIn"},
                                           call->response.ByteSizeLong());
                     } else {
                       CountError("CheckIn", s);
                     }
                     call->Reply(ToGrpcStatus(s));
                   });
  return call;
}

grpc::ServerUnaryReactor* CoordinatorService::SecAggCall(grpc::CallbackServerContext* ctx,
                                                         const char* method, secagg::Phase phase,
                                                         const Raw* request, Raw* response) {
  auto* call = new SecAggCallData(response);
  // Up to 64 MiB: the size and who sends it are checked before the bytes are parsed.
  absl::Status refused =
      internal::CheckRequestSize(*request, limits_.secagg_message_bytes, method);
  if (!refused.ok()) return Refuse(call, method, refused);
  auto md = CheckCallMetadata(ctx);
  if (!md.ok()) return Refuse(call, method, md.status());
  refused = internal::ParseRequest(*request, limits_.secagg_message_bytes, method, &call->request);
  if (!refused.ok()) return Refuse(call, method, refused);
  std::string digest;
  auto device = VerifyCall(*md, Method(method), call->request, &digest);
  if (!device.ok()) return Refuse(call, method, device.status());
  metrics_->Increment("fedlora_bytes_received_total", {method},
                      static_cast<double>(request->Length()));
  rounds_->SecAgg(Signed(ctx, *md, method, *request), phase, call->request, digest,
                  [this, call, method](absl::Status s, v1::SecAggDownload reply) {
                    if (s.ok()) {
                      call->response = std::move(reply);
                      metrics_->Increment("fedlora_bytes_sent_total", {method},
                                          static_cast<double>(call->response.ByteSizeLong()));
                    } else {
                      CountError(method, s);
                    }
                    call->Reply(ToGrpcStatus(s));
                  });
  return call;
}

grpc::ServerUnaryReactor* CoordinatorService::AdvertiseKeys(grpc::CallbackServerContext* ctx,
                                                   const Raw* request, Raw* response) {
  return SecAggCall(ctx, "AdvertiseKeys", secagg::Phase::kAdvertiseKeys, request, response);
}
grpc::ServerUnaryReactor* CoordinatorService::ShareKeys(grpc::CallbackServerContext* ctx,
                                                   const Raw* request, Raw* response) {
  return SecAggCall(ctx, "ShareKeys", secagg::Phase::kShareKeys, request, response);
}
grpc::ServerUnaryReactor* CoordinatorService::MaskedInput(grpc::CallbackServerContext* ctx,
                                                   const Raw* request, Raw* response) {
  return SecAggCall(ctx, "MaskedInput", secagg::Phase::kMaskedInput, request, response);
}
grpc::ServerUnaryReactor* CoordinatorService::Unmasking(grpc::CallbackServerContext* ctx,
                                                   const Raw* request, Raw* response) {
  return SecAggCall(ctx, "Unmasking", secagg::Phase::kUnmasking, request, response);
}

grpc::ServerUnaryReactor* CoordinatorService::GetRelease(grpc::CallbackServerContext* ctx,
                                                         const Raw* raw_request,
                                                         Raw* raw_response) {
  auto* call = new internal::UnaryCall<v1::ReleaseRequest, v1::ReleaseOffer>(raw_response);
  const v1::ReleaseRequest* request = &call->request;
  v1::ReleaseOffer* response = &call->response;
  absl::Status parsed = internal::ParseRequest(*raw_request, limits_.small_message_bytes,
                                               "GetRelease", &call->request);
  if (!parsed.ok()) return Refuse(call, "GetRelease", parsed);
  auto device = Authenticate(ctx, Method("GetRelease"), *request);
  if (!device.ok()) return Refuse(call, "GetRelease", device.status());
  metrics_->Increment("fedlora_bytes_received_total", {"GetRelease"}, raw_request->Length());
  DeviceReleaseReport report;
  report.device_id = *device;
  report.running_version = request->running_version();
  report.fell_back_from = request->fell_back_from();
  reports_->Record(report);  // written behind, in batches: no fsync on this call
  if (report.fell_back_from != 0) metrics_->Increment(kMetricReleaseFallbacksTotal);
  auto releases = store_->ListReleases();
  if (!releases.ok()) return Refuse(call, "GetRelease", releases.status());
  DeviceReleaseQuery q;
  q.device_id = *device;
  q.base_model_sha256 = request->base_model_sha256();
  if (!request->segment().empty()) q.segment = request->segment();
  q.running_version = request->running_version();
  q.fell_back_from = request->fell_back_from();
  const ReleaseDecision d = ChooseRelease(*releases, q);
  // The operator's signed freshness statement (`fedlora release timestamp`), offer or not.
  if (auto ts = store_->GetMeta("release_timestamp/" + q.segment); ts.ok()) {
    response->set_timestamp_json(*ts);
  }
  response->set_offered(d.offered);
  response->set_detail(d.detail);
  if (d.offered) {
    response->set_version(d.release.version);
    response->set_release_id(d.release.release_id);
    response->set_bundle_sha256(d.release.bundle_sha256);
    response->set_bundle_bytes(d.release.bundle_bytes);
    response->set_rollback_json(d.rollback_json);
  }
  metrics_->Increment(kMetricReleaseChecksTotal, {d.offered ? "offered" : "kept"});
  metrics_->Increment("fedlora_bytes_sent_total", {"GetRelease"}, response->ByteSizeLong());
  call->Reply(grpc::Status::OK);
  return call;
}

}  // namespace fedlora::coordinator
