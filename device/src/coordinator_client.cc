#include "fedlora/device/coordinator_client.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "fedlora/common/call_signature.h"
#include "fedlora/common/encoding.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/net_address.h"
#include "fedlora/common/proto_bytes.h"
#include "fedlora/common/random.h"

namespace fedlora::device {
namespace {

constexpr char kService[] = "/fedlora.v1.Coordinator/";
const char* kPhaseMethods[] = {"AdvertiseKeys", "ShareKeys", "MaskedInput", "Unmasking"};

void SetDeadline(grpc::ClientContext* ctx, absl::Duration timeout) {
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(absl::ToInt64Milliseconds(timeout)));
}

}  // namespace

absl::Status FromGrpcStatus(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

bool IsTransient(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kCancelled:
    case absl::StatusCode::kInternal:
      return true;
    default:
      return false;
  }
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const ChannelOptions& o) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetMaxSendMessageSize(64 << 20);
  // One connection per channel: many simulated devices in one process must not share (and
  // exhaust) one HTTP/2 connection's stream limit.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // Reconnect soon after a coordinator restart: gRPC's reconnect backoff starts at 1 s and
  // grows to 10 s (the device loop's own backoff, with jitter, paces the calls themselves).
  // GRPC_ARG_MIN_RECONNECT_BACKOFF_MS is left at its default on purpose: gRPC uses it as the
  // least time one connection attempt (TCP, TLS and HTTP/2 handshakes) is given (20 s). Set to
  // 250 ms, a restarted coordinator's handshakes never finished in time ("Handshake read
  // failed") and devices never came back.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 10000);
  if (o.insecure) {
    if (!IsLoopbackAddress(o.address)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--insecure (plaintext) is allowed only to a loopback coordinator, not ", o.address,
          " (hint: pass --ca with the coordinator's CA certificate)"));
    }
    return grpc::CreateCustomChannel(o.address, grpc::InsecureChannelCredentials(), args);
  }
  grpc::SslCredentialsOptions ssl;
  if (!o.ca_pem_path.empty()) {
    auto ca = ReadFileToString(o.ca_pem_path);
    if (!ca.ok()) {
      return absl::NotFoundError(absl::StrCat("cannot read the CA certificate ", o.ca_pem_path,
                                              ": ", ca.status().message()));
    }
    ssl.pem_root_certs = *ca;
  }
  if (!o.server_name.empty()) args.SetSslTargetNameOverride(o.server_name);
  return grpc::CreateCustomChannel(o.address, grpc::SslCredentials(ssl), args);
}

CoordinatorClient::CoordinatorClient(std::shared_ptr<grpc::Channel> channel,
                                     const Ed25519Key* key, std::string device_id)
    : stub_(v1::Coordinator::NewStub(channel)), key_(key), device_id_(std::move(device_id)) {}

absl::StatusOr<v1::EnrollResponse> CoordinatorClient::Enroll(
    const std::shared_ptr<grpc::Channel>& channel, const v1::EnrollRequest& request,
    absl::Duration timeout) {
  auto stub = v1::Coordinator::NewStub(channel);
  grpc::ClientContext ctx;
  SetDeadline(&ctx, timeout);
  v1::EnrollResponse response;
  absl::Status s = FromGrpcStatus(stub->Enroll(&ctx, request, &response));
  if (!s.ok()) return s;
  return response;
}

absl::Status CoordinatorClient::Sign(grpc::ClientContext* ctx, const std::string& method,
                                     const google::protobuf::MessageLite& request) {
  const std::string body = DeterministicBytes(request);
  if (on_send) on_send(method, body);
  bytes_sent_ += body.size();
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  std::string nonce(kCallNonceBytes, '\0');
  SecureRandom rng;
  rng.Fill(reinterpret_cast<uint8_t*>(nonce.data()), nonce.size());
  auto sig = key_->Sign(CallSigningBytes(method, device_id_, now, nonce, body));
  if (!sig.ok()) return sig.status();
  ctx->AddMetadata(kCallDeviceMetadataKey, device_id_);
  ctx->AddMetadata(kCallTimeMetadataKey, std::to_string(now));
  ctx->AddMetadata(kCallNonceMetadataKey, HexEncode(nonce));
  ctx->AddMetadata(kCallSignatureMetadataKey, HexEncode(*sig));
  return absl::OkStatus();
}

absl::StatusOr<v1::CheckInResponse> CoordinatorClient::CheckIn(const v1::CheckInRequest& request,
                                                               absl::Duration timeout) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, timeout);
  if (auto s = Sign(&ctx, absl::StrCat(kService, "CheckIn"), request); !s.ok()) return s;
  v1::CheckInResponse response;
  absl::Status s = FromGrpcStatus(stub_->CheckIn(&ctx, request, &response));
  if (!s.ok()) return s;
  bytes_received_ += response.ByteSizeLong();
  return response;
}

absl::StatusOr<v1::SecAggDownload> CoordinatorClient::SecAgg(secagg::Phase phase,
                                                             const v1::SecAggUpload& upload,
                                                             absl::Duration timeout,
                                                             const std::string& address) {
  const int i = static_cast<int>(phase);
  if (i < 0 || i > 3) return absl::InvalidArgumentError("not a secure-aggregation phase");
  v1::Coordinator::Stub* stub = stub_.get();
  if (!address.empty()) {
    auto& aggregator = aggregators_[address];
    if (!aggregator) {
      if (!channel_options_) {
        aggregators_.erase(address);
        return absl::FailedPreconditionError(absl::StrCat(
            "the task names aggregator ", address, " but this client cannot dial one (hint: "
            "CoordinatorClient::set_channel_options with the coordinator's TLS settings)"));
      }
      ChannelOptions o = *channel_options_;
      o.address = address;
      auto channel = MakeChannel(o);
      if (!channel.ok()) {
        aggregators_.erase(address);
        return channel.status();
      }
      aggregator = v1::Coordinator::NewStub(*channel);
    }
    stub = aggregator.get();
  }
  grpc::ClientContext ctx;
  SetDeadline(&ctx, timeout);
  if (auto s = Sign(&ctx, absl::StrCat(kService, kPhaseMethods[i]), upload); !s.ok()) return s;
  v1::SecAggDownload response;
  grpc::Status g;
  switch (phase) {
    case secagg::Phase::kAdvertiseKeys: g = stub->AdvertiseKeys(&ctx, upload, &response); break;
    case secagg::Phase::kShareKeys: g = stub->ShareKeys(&ctx, upload, &response); break;
    case secagg::Phase::kMaskedInput: g = stub->MaskedInput(&ctx, upload, &response); break;
    default: g = stub->Unmasking(&ctx, upload, &response); break;
  }
  absl::Status s = FromGrpcStatus(g);
  if (!s.ok()) return s;
  bytes_received_ += response.ByteSizeLong();
  return response;
}

absl::StatusOr<v1::ReleaseOffer> CoordinatorClient::GetRelease(const v1::ReleaseRequest& request,
                                                               absl::Duration timeout) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, timeout);
  if (auto s = Sign(&ctx, absl::StrCat(kService, "GetRelease"), request); !s.ok()) return s;
  v1::ReleaseOffer response;
  absl::Status s = FromGrpcStatus(stub_->GetRelease(&ctx, request, &response));
  if (!s.ok()) return s;
  bytes_received_ += response.ByteSizeLong();
  return response;
}

absl::StatusOr<std::string> CoordinatorClient::Download(uint64_t version,
                                                        const std::string& sha256_hex,
                                                        const std::string& partial_path,
                                                        absl::Duration timeout) {
  return DownloadBlob(false, version, sha256_hex, partial_path, timeout);
}

absl::StatusOr<std::string> CoordinatorClient::DownloadRelease(uint64_t version,
                                                               const std::string& sha256_hex,
                                                               const std::string& partial_path,
                                                               absl::Duration timeout) {
  return DownloadBlob(true, version, sha256_hex, partial_path, timeout);
}

absl::StatusOr<std::string> CoordinatorClient::DownloadBlob(bool release, uint64_t version,
                                                            const std::string& sha256_hex,
                                                            const std::string& partial_path,
                                                            absl::Duration timeout) {
  const char* method = release ? "DownloadRelease" : "DownloadAdapter";
  std::string have;
  if (auto existing = ReadFileToString(partial_path); existing.ok()) have = std::move(*existing);
  v1::DownloadRequest request;
  request.set_version(version);
  request.set_offset(have.size());
  grpc::ClientContext ctx;
  SetDeadline(&ctx, timeout);
  if (auto s = Sign(&ctx, absl::StrCat(kService, method), request); !s.ok()) return s;
  auto reader = release ? stub_->DownloadRelease(&ctx, request)
                        : stub_->DownloadAdapter(&ctx, request);
  std::ofstream out(partial_path, std::ios::binary | std::ios::app);
  if (!out) return absl::PermissionDeniedError(absl::StrCat("cannot write ", partial_path));
  v1::AdapterChunk chunk;
  auto discard = [&](const std::string& why) {
    out.close();
    std::remove(partial_path.c_str());
    return absl::DataLossError(absl::StrCat(release ? "release" : "adapter", " download: ", why,
                                            " (the partial file was discarded; retry)"));
  };
  while (reader->Read(&chunk)) {
    bytes_received_ += chunk.ByteSizeLong();
    if (chunk.offset() != have.size()) return discard("chunk out of order");
    if (Sha256(chunk.data()) != chunk.sha256()) return discard("chunk hash mismatch");
    if (chunk.total_sha256() != sha256_hex) return discard("the server offers another blob");
    if (have.size() + chunk.data().size() > chunk.total_bytes()) return discard("blob too long");
    have += chunk.data();
    out.write(chunk.data().data(), static_cast<std::streamsize>(chunk.data().size()));
    out.flush();  // a broken download resumes from what reached the disk
  }
  absl::Status s = FromGrpcStatus(reader->Finish());
  if (!s.ok()) return s;  // the partial file stays: the next call resumes
  out.close();
  if (HexEncode(Sha256(have)) != sha256_hex) return discard("whole-blob hash mismatch");
  std::remove(partial_path.c_str());
  return have;
}

}  // namespace fedlora::device
