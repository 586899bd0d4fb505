// The HostileTest fixture: an in-process coordinator (grpc_testutil.h) with enrolled "phones",
// and raw, hand-signed calls for tests that play a hostile or careless client.
#ifndef FEDLORA_TESTS_COORDINATOR_HOSTILE_TESTUTIL_H_
#define FEDLORA_TESTS_COORDINATOR_HOSTILE_TESTUTIL_H_

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "fedlora/common/call_signature.h"
#include "fedlora/common/ed25519.h"
#include "fedlora/common/encoding.h"
#include "fedlora/common/proto_bytes.h"
#include "fedlora/common/random.h"
#include "fedlora/coordinator/coordinator_server.h"
#include "fedlora/device/coordinator_client.h"
#include "grpc_testutil.h"
#include "gtest/gtest.h"

namespace fedlora::coordinator::testing {

inline constexpr size_t kHostileDim = 1000;

// This process's resident memory (VmRSS of /proc/self/status) in bytes; 0 if unreadable.
inline size_t RssBytes() {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  size_t kib = 0;
  while (std::fgets(line, sizeof line, f)) {
    if (std::sscanf(line, "VmRSS: %zu kB", &kib) == 1) break;
  }
  std::fclose(f);
  return kib * 1024;
}

struct Phone {
  std::string id;
  Ed25519Key key;
};

inline int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Adds the call-signature metadata of `method` ("/fedlora.v1.Coordinator/X") over `req`, as
// device `device` with `key`, time `ms` and `nonce` (16 random bytes when empty).
inline void SignCall(grpc::ClientContext* ctx, const std::string& method, const std::string& device,
                     const Ed25519Key& key, const google::protobuf::MessageLite& req, int64_t ms,
                     std::string nonce = "") {
  if (nonce.empty()) {
    nonce.assign(16, '\0');
    SecureRandom().Fill(reinterpret_cast<uint8_t*>(nonce.data()), nonce.size());
  }
  auto sig = key.Sign(CallSigningBytes(method, device, ms, nonce, DeterministicBytes(req)));
  EXPECT_TRUE(sig.ok());
  ctx->AddMetadata(kCallDeviceMetadataKey, device);
  ctx->AddMetadata(kCallTimeMetadataKey, std::to_string(ms));
  ctx->AddMetadata(kCallNonceMetadataKey, HexEncode(nonce));
  ctx->AddMetadata(kCallSignatureMetadataKey, sig.ok() ? HexEncode(*sig) : "");
}

// A DownloadAdapter (or, with `release`, DownloadRelease) stream of `version` signed as
// `device`, opened and not read. `ctx` must outlive the returned reader.
inline std::unique_ptr<grpc::ClientReader<v1::AdapterChunk>> OpenDownload(
    v1::Coordinator::Stub& stub, const std::string& device, const Ed25519Key& key, uint64_t version,
    grpc::ClientContext* ctx, bool release = false) {
  v1::DownloadRequest req;
  req.set_version(version);
  SignCall(ctx,
           release ? "/fedlora.v1.Coordinator/DownloadRelease"
                   : "/fedlora.v1.Coordinator/DownloadAdapter",
           device, key, req, WallMs());
  return release ? stub.DownloadRelease(ctx, req) : stub.DownloadAdapter(ctx, req);
}

// A channel to `port` whose streams, when not read, really stall the server's writes: no
// bandwidth probing, so a blob larger than the 64 KiB stream window cannot all sit in the client.
inline std::shared_ptr<grpc::Channel> LazyChannel(int port) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port),
                                   grpc::InsecureChannelCredentials(), args);
}

class HostileTest : public ::testing::Test {
 protected:
  void Start(int goal, int devices, size_t dim = kHostileDim,
             absl::Duration download_timeout = absl::Seconds(120)) {
    dir_ = ::testing::TempDir() + "/hostile_" + std::to_string(getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    TestCoordinatorOptions t;
    t.goal = goal;
    t.devices = devices;
    t.tokens = devices + 2;
    t.dim = dim;
    t.download_timeout = download_timeout;
    auto server = StartTestCoordinator(dir_, t);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                   grpc::InsecureChannelCredentials());
    for (int i = 0; i < devices; ++i) phones_.push_back(Enroll(i));
  }

  Phone Enroll(int i) {
    auto key = Ed25519Key::Generate();
    EXPECT_TRUE(key.ok());
    v1::EnrollRequest req;
    req.set_token(EnrolmentToken(i));
    req.set_public_key(key->PublicRaw());
    auto resp = device::CoordinatorClient::Enroll(channel_, req, absl::Seconds(10));
    EXPECT_TRUE(resp.ok()) << resp.status();
    return Phone{resp.ok() ? resp->device_id() : "", std::move(*key)};
  }

  std::unique_ptr<device::CoordinatorClient> Client(const Phone& p) {
    return std::make_unique<device::CoordinatorClient>(channel_, &p.key, p.id);
  }

  // A CheckIn whose metadata the test controls.
  grpc::Status RawCheckIn(const std::string& device, const Ed25519Key& key, int64_t ms,
                          const std::string& nonce, const v1::CheckInRequest& req,
                          bool sign = true) {
    auto stub = v1::Coordinator::NewStub(channel_);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    if (sign) SignCall(&ctx, "/fedlora.v1.Coordinator/CheckIn", device, key, req, ms, nonce);
    v1::CheckInResponse resp;
    return stub->CheckIn(&ctx, req, &resp);
  }

  static std::unique_ptr<grpc::ClientReader<v1::AdapterChunk>> OpenDownload(
      v1::Coordinator::Stub& stub, const Phone& p, uint64_t version, grpc::ClientContext* ctx) {
    return testing::OpenDownload(stub, p.id, p.key, version, ctx);
  }
  std::shared_ptr<grpc::Channel> LazyChannel() { return testing::LazyChannel(server_->port()); }

  static int64_t NowMs() { return WallMs(); }

  std::string dir_;
  std::unique_ptr<CoordinatorServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::vector<Phone> phones_;
};

}  // namespace fedlora::coordinator::testing

#endif  // FEDLORA_TESTS_COORDINATOR_HOSTILE_TESTUTIL_H_
