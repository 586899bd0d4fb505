// Enroll: the one unsigned call (the single-use token is the credential). Anyone can make it,
// so it is rate-limited per peer address before anything else, and a token is looked up with
// a read before the write transaction that uses it: a flood of bad tokens costs no writes.
#include <cmath>

#include "absl/strings/str_cat.h"
#include "fedlora/common/encoding.h"
#include "fedlora/common/random.h"
#include "fedlora/coordinator/grpc_service.h"
#include "raw_call.h"

namespace fedlora::coordinator {
namespace {

// The store's NOT_FOUND / ALREADY_EXISTS for a token, as the caller sees them.
absl::Status TokenRefusal(const absl::Status& s) {
  if (s.code() == absl::StatusCode::kNotFound) {
    return absl::PermissionDeniedError(
        "unknown enrolment token (hint: ask the operator for one; `fedlora coordinator init` "
        "writes them)");
  }
  if (s.code() == absl::StatusCode::kAlreadyExists) {
    return absl::PermissionDeniedError(
        "this enrolment token was already used (tokens are single-use)");
  }
  return s;
}

}  // namespace

grpc::ServerUnaryReactor* CoordinatorService::Enroll(grpc::CallbackServerContext* ctx,
                                                     const Raw* raw_request, Raw* raw_response) {
  auto* call = new internal::UnaryCall<v1::EnrollRequest, v1::EnrollResponse>(raw_response);
  const std::string peer = PeerKey(ctx->peer());
  const absl::Time now = absl::Now();
  if (!enroll_limiter_.TryTake(peer, now)) {
    const double wait = enroll_limiter_.SecondsUntilToken(peer, now);
    return Refuse(call, "Enroll",
                  absl::ResourceExhaustedError(absl::StrCat(
                      "too many refused enrolments from ", peer, "; try again in ", std::ceil(wait),
                      " s (hint: check the token: each is single-use)")));
  }
  absl::Status s =
      internal::ParseRequest(*raw_request, limits_.small_message_bytes, "Enroll", &call->request);
  if (!s.ok()) return Refuse(call, "Enroll", s);
  const v1::EnrollRequest& request = call->request;
  metrics_->Increment("fedlora_bytes_received_total", {"Enroll"}, raw_request->Length());
  if (request.public_key().size() != 32) {
    return Refuse(call, "Enroll",
                  absl::InvalidArgumentError("public_key must be a raw Ed25519 key (32 bytes)"));
  }
  if (request.token().empty() || request.token().size() > 256) {
    return Refuse(call, "Enroll", absl::InvalidArgumentError("enrolment token missing"));
  }
  const std::string token_hash = HexEncode(Sha256(request.token()));
  // A read first: unknown and used tokens never open a write transaction.
  if (s = store_->CheckTokenUnused(token_hash); !s.ok()) {
    return Refuse(call, "Enroll", TokenRefusal(s));
  }
  SecureRandom rng;
  std::string id_bytes(8, '\0');
  rng.Fill(reinterpret_cast<uint8_t*>(id_bytes.data()), id_bytes.size());
  DeviceRecord device;
  device.device_id = "dev-" + HexEncode(id_bytes);
  device.public_key = request.public_key();
  if (s = store_->EnrollDevice(token_hash, device); !s.ok()) {
    return Refuse(call, "Enroll", TokenRefusal(s));
  }
  enroll_limiter_.Refund(peer, absl::Now());  // a legitimate enrolment costs its peer nothing
  auto devices = store_->ListDevices();
  if (devices.ok()) metrics_->Set("fedlora_enrolled_devices", static_cast<double>(devices->size()));
  call->response.set_device_id(device.device_id);
  call->response.set_coordinator_id(coordinator_id_);
  call->Reply(grpc::Status::OK);
  return call;
}

}  // namespace fedlora::coordinator
