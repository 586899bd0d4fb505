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
    : rounds_(rounds),
      store_(store),
      metrics_(metrics),
      limits_(limits),
      coordinator_id_(std::move(coordinator_id)),
      replay_(NowMs(), limits.clock_window_ms) {}

CoordinatorService::~CoordinatorService() = default;

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

absl::StatusOr<std::string> CoordinatorService::Authenticate(
    grpc::CallbackServerContext* ctx, const std::string& method,
    const google::protobuf::MessageLite& request, std::string* body_sha256) {
  auto device = Metadata(ctx, kCallDeviceMetadataKey);
  if (!device.ok()) return device.status();
  auto time = Metadata(ctx, kCallTimeMetadataKey);
  if (!time.ok()) return time.status();
  auto nonce_hex = Metadata(ctx, kCallNonceMetadataKey);
  if (!nonce_hex.ok()) return nonce_hex.status();
  auto sig_hex = Metadata(ctx, kCallSignatureMetadataKey);
  if (!sig_hex.ok()) return sig_hex.status();
  int64_t call_ms = 0;
  if (!absl::SimpleAtoi(*time, &call_ms)) {
    return absl::UnauthenticatedError("x-fedlora-time-ms is not a decimal integer");
  }
  auto nonce = HexDecode(*nonce_hex);
  auto sig = HexDecode(*sig_hex);
  if (!nonce.ok() || !sig.ok()) return absl::UnauthenticatedError("nonce or signature is not hex");
  auto record = store_->GetDevice(*device);
  if (!record.ok()) {
    if (record.status().code() == absl::StatusCode::kNotFound) {
      return absl::UnauthenticatedError(absl::StrCat(
          "unknown device ", *device, " (hint: enroll it with a token from the operator)"));
    }
    return record.status();
  }
  if (record->revoked) {
    return absl::PermissionDeniedError(
        absl::StrCat("device ", *device, " is revoked: ", record->revoked_reason));
  }
  const std::string body = DeterministicBytes(request);
  absl::Status v = VerifyEd25519(record->public_key,
                                 CallSigningBytes(method, *device, call_ms, *nonce, body), *sig);
  if (body_sha256) *body_sha256 = Sha256(body);
  if (!v.ok()) {
    return absl::UnauthenticatedError(
        absl::StrCat("bad call signature from device ", *device, ": ", v.message()));
  }
  absl::Status r = replay_.Check(*device, call_ms, *nonce, NowMs());
  if (!r.ok()) return r;
  return *device;
}

grpc::ServerUnaryReactor* CoordinatorService::Enroll(grpc::CallbackServerContext* ctx,
                                                     const v1::EnrollRequest* request,
                                                     v1::EnrollResponse* response) {
  if (request->ByteSizeLong() > limits_.small_message_bytes) {
    return Refuse(ctx, "Enroll", absl::InvalidArgumentError("enrol request too large"));
  }
  metrics_->Increment("fedlora_bytes_received_total", {"Enroll"}, request->ByteSizeLong());
  if (request->public_key().size() != 32) {
    return Refuse(ctx, "Enroll",
                  absl::InvalidArgumentError("public_key must be a raw Ed25519 key (32 bytes)"));
  }
  if (request->token().empty() || request->token().size() > 256) {
    return Refuse(ctx, "Enroll", absl::InvalidArgumentError("enrolment token missing"));
  }
  SecureRandom rng;
  std::string id_bytes(8, '\0');
  rng.Fill(reinterpret_cast<uint8_t*>(id_bytes.data()), id_bytes.size());
  DeviceRecord device;
  device.device_id = "dev-" + HexEncode(id_bytes);
  device.public_key = request->public_key();
  absl::Status s = store_->EnrollDevice(HexEncode(Sha256(request->token())), device);
  if (s.code() == absl::StatusCode::kNotFound) {
    s = absl::PermissionDeniedError("unknown enrolment token (hint: ask the operator for one; "
                                    "`fedlora coordinator init` writes them)");
  } else if (s.code() == absl::StatusCode::kAlreadyExists) {
    s = absl::PermissionDeniedError("this enrolment token was already used (tokens are single-use)");
  }
  if (!s.ok()) return Refuse(ctx, "Enroll", s);
  auto devices = store_->ListDevices();
  if (devices.ok()) metrics_->Set("fedlora_enrolled_devices", static_cast<double>(devices->size()));
  response->set_device_id(device.device_id);
  response->set_coordinator_id(coordinator_id_);
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorService::CheckIn(grpc::CallbackServerContext* ctx,
                                                      const v1::CheckInRequest* request,
                                                      v1::CheckInResponse* response) {
  if (request->ByteSizeLong() > limits_.small_message_bytes) {
    return Refuse(ctx, "CheckIn", absl::InvalidArgumentError("check-in request too large"));
  }
  auto device = Authenticate(ctx, Method("CheckIn"), *request);
  if (!device.ok()) return Refuse(ctx, "CheckIn", device.status());
  metrics_->Increment("fedlora_bytes_received_total", {"CheckIn"}, request->ByteSizeLong());
  auto* reactor = ctx->DefaultReactor();
  rounds_->CheckIn(*device, *request,
                   [this, reactor, response](absl::Status s, v1::CheckInResponse reply) {
                     if (s.ok()) {
                       *response = std::move(reply);
                       metrics_->Increment("fedlora_bytes_sent_total", {"CheckIn"},
                                           response->ByteSizeLong());
                     } else {
                       CountError("CheckIn", s);
                     }
                     reactor->Finish(ToGrpcStatus(s));
                   });
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorService::SecAggCall(grpc::CallbackServerContext* ctx,
                                                         const char* method, secagg::Phase phase,
                                                         const v1::SecAggUpload* request,
                                                         v1::SecAggDownload* response) {
  const size_t size = request->ByteSizeLong();
  if (size > limits_.secagg_message_bytes) {
    return Refuse(ctx, method, absl::InvalidArgumentError(absl::StrCat(
                                   method, " message of ", size, " bytes exceeds the limit ",
                                   limits_.secagg_message_bytes)));
  }
  std::string digest;
  auto device = Authenticate(ctx, Method(method), *request, &digest);
  if (!device.ok()) return Refuse(ctx, method, device.status());
  metrics_->Increment("fedlora_bytes_received_total", {method}, static_cast<double>(size));
  auto* reactor = ctx->DefaultReactor();
  rounds_->SecAgg(*device, phase, *request, digest,
                  [this, reactor, response, method](absl::Status s, v1::SecAggDownload reply) {
                    if (s.ok()) {
                      *response = std::move(reply);
                      metrics_->Increment("fedlora_bytes_sent_total", {method},
                                          static_cast<double>(response->ByteSizeLong()));
                    } else {
                      CountError(method, s);
                    }
                    reactor->Finish(ToGrpcStatus(s));
                  });
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorService::AdvertiseKeys(grpc::CallbackServerContext* ctx,
                                                            const v1::SecAggUpload* request,
                                                            v1::SecAggDownload* response) {
  return SecAggCall(ctx, "AdvertiseKeys", secagg::Phase::kAdvertiseKeys, request, response);
}
grpc::ServerUnaryReactor* CoordinatorService::ShareKeys(grpc::CallbackServerContext* ctx,
                                                        const v1::SecAggUpload* request,
                                                        v1::SecAggDownload* response) {
  return SecAggCall(ctx, "ShareKeys", secagg::Phase::kShareKeys, request, response);
}
grpc::ServerUnaryReactor* CoordinatorService::MaskedInput(grpc::CallbackServerContext* ctx,
                                                          const v1::SecAggUpload* request,
                                                          v1::SecAggDownload* response) {
  return SecAggCall(ctx, "MaskedInput", secagg::Phase::kMaskedInput, request, response);
}
grpc::ServerUnaryReactor* CoordinatorService::Unmasking(grpc::CallbackServerContext* ctx,
                                                        const v1::SecAggUpload* request,
                                                        v1::SecAggDownload* response) {
  return SecAggCall(ctx, "Unmasking", secagg::Phase::kUnmasking, request, response);
}

grpc::ServerUnaryReactor* CoordinatorService::Report(grpc::CallbackServerContext* ctx,
                                                     const v1::ReportRequest* request,
                                                     v1::ReportResponse*) {
  if (request->ByteSizeLong() > limits_.small_message_bytes) {
    return Refuse(ctx, "Report", absl::InvalidArgumentError("report too large"));
  }
  auto device = Authenticate(ctx, Method("Report"), *request);
  if (!device.ok()) return Refuse(ctx, "Report", device.status());
  absl::Status s = rounds_->Report(*device, *request);
  if (!s.ok()) return Refuse(ctx, "Report", s);
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorService::GetRelease(grpc::CallbackServerContext* ctx,
                                                         const v1::ReleaseRequest* request,
                                                         v1::ReleaseOffer* response) {
  if (request->ByteSizeLong() > limits_.small_message_bytes) {
    return Refuse(ctx, "GetRelease", absl::InvalidArgumentError("release request too large"));
  }
  auto device = Authenticate(ctx, Method("GetRelease"), *request);
  if (!device.ok()) return Refuse(ctx, "GetRelease", device.status());
  metrics_->Increment("fedlora_bytes_received_total", {"GetRelease"}, request->ByteSizeLong());
  DeviceReleaseReport report;
  report.device_id = *device;
  report.running_version = request->running_version();
  report.fell_back_from = request->fell_back_from();
  if (absl::Status s = store_->RecordDeviceRelease(report); !s.ok()) {
    return Refuse(ctx, "GetRelease", s);
  }
  if (report.fell_back_from != 0) metrics_->Increment(kMetricReleaseFallbacksTotal);
  auto releases = store_->ListReleases();
  if (!releases.ok()) return Refuse(ctx, "GetRelease", releases.status());
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
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace fedlora::coordinator
