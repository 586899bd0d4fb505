// The device's side of the fedlora.v1 protocol: a gRPC stub that signs every call with the
// device's Ed25519 key (fedlora/common/call_signature.h), puts a deadline on every call and
// turns gRPC statuses into absl ones. Torch-free.
#ifndef FEDLORA_DEVICE_COORDINATOR_CLIENT_H_
#define FEDLORA_DEVICE_COORDINATOR_CLIENT_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fedlora/common/ed25519.h"
#include "fedlora/proto/fedlora_v1.grpc.pb.h"
#include "fedlora/secagg/types.h"

namespace fedlora::device {

struct ChannelOptions {
  std::string address;       // host:port of the coordinator
  bool insecure = false;     // plaintext (loopback only, for tests and demos)
  std::string ca_pem_path;   // CA that signed the coordinator's certificate (TLS)
  std::string server_name;   // TLS name to check if not the host of `address`
};

// NOT_FOUND for an unreadable CA file; INVALID_ARGUMENT for plaintext to a non-loopback host.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const ChannelOptions& options);

absl::Status FromGrpcStatus(const grpc::Status& s);
// Worth retrying later with backoff: UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED,
// ABORTED, CANCELLED, INTERNAL (a broken connection). Everything else is permanent.
bool IsTransient(const absl::Status& s);

class CoordinatorClient {
 public:
  // `key` must outlive the client.
  CoordinatorClient(std::shared_ptr<grpc::Channel> channel, const Ed25519Key* key,
                    std::string device_id);

  // Unsigned: the token is the credential. PERMISSION_DENIED for an unknown or used token.
  static absl::StatusOr<v1::EnrollResponse> Enroll(const std::shared_ptr<grpc::Channel>& channel,
                                                   const v1::EnrollRequest& request,
                                                   absl::Duration timeout);

  absl::StatusOr<v1::CheckInResponse> CheckIn(const v1::CheckInRequest& request,
                                              absl::Duration timeout);
  // Downloads adapter `version` into `partial_path` (resuming from its current size), checks
  // every chunk's hash and the whole blob's against `sha256_hex`, returns the blob and removes
  // the partial file. DATA_LOSS for a hash mismatch (the partial file is discarded).
  absl::StatusOr<std::string> Download(uint64_t version, const std::string& sha256_hex,
                                       const std::string& partial_path, absl::Duration timeout);
  // Reports the release this device runs and asks which one it should run.
  absl::StatusOr<v1::ReleaseOffer> GetRelease(const v1::ReleaseRequest& request,
                                              absl::Duration timeout);
  // As Download, for the bundle of release `version`.
  absl::StatusOr<std::string> DownloadRelease(uint64_t version, const std::string& sha256_hex,
                                              const std::string& partial_path,
                                              absl::Duration timeout);
  // `address`: the task's aggregator_address ("" = this client's coordinator); another address
  // is dialled like the coordinator (set_channel_options), one channel per address, kept.
  // FAILED_PRECONDITION for an aggregator address when no channel options were set.
  absl::StatusOr<v1::SecAggDownload> SecAgg(secagg::Phase phase, const v1::SecAggUpload& upload,
                                            absl::Duration timeout,
                                            const std::string& address = "");
  // How to reach an aggregator process a task names (multi-host): the coordinator's TLS
  // settings (CA, insecure on loopback); `address` is replaced by the task's.
  void set_channel_options(const ChannelOptions& options) { channel_options_ = options; }

  // Test hook: sees every request (method name, serialized bytes) before it is sent.
  std::function<void(const std::string& method, const std::string& bytes)> on_send;
  uint64_t bytes_sent() const { return bytes_sent_; }
  uint64_t bytes_received() const { return bytes_received_; }

 private:
  absl::StatusOr<std::string> DownloadBlob(bool release, uint64_t version,
                                           const std::string& sha256_hex,
                                           const std::string& partial_path,
                                           absl::Duration timeout);
  // Adds the signature metadata for `method` over `request`.
  absl::Status Sign(grpc::ClientContext* ctx, const std::string& method,
                    const google::protobuf::MessageLite& request);

  std::unique_ptr<v1::Coordinator::Stub> stub_;
  std::optional<ChannelOptions> channel_options_;
  std::map<std::string, std::unique_ptr<v1::Coordinator::Stub>> aggregators_;
  const Ed25519Key* key_;
  std::string device_id_;
  uint64_t bytes_sent_ = 0;
  uint64_t bytes_received_ = 0;
};

}  // namespace fedlora::device

#endif  // FEDLORA_DEVICE_COORDINATOR_CLIENT_H_
