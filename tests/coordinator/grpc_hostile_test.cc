// The gRPC coordinator in-process against hostile and faulty peers: forged, replayed, stale,
// revoked, oversized, malformed and out-of-phase calls, stalled downloads, and rounds with
// devices that send wrong-length vectors or drop out at random phases. Each is refused with a
// status that says why, and the coordinator keeps serving.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <thread>

#include "fedlora/common/call_signature.h"
#include "fedlora/common/encoding.h"
#include "fedlora/common/proto_bytes.h"
#include "fedlora/common/random.h"
#include "fedlora/coordinator/coordinator_server.h"
#include "fedlora/device/coordinator_client.h"
#include "fedlora/privacy/params_wire.h"
#include "fedlora/secagg/device.h"
#include "gmock/gmock.h"
#include "grpc_testutil.h"
#include "gtest/gtest.h"
#include "hostile_testutil.h"

namespace fedlora::coordinator {
namespace {

using ::testing::HasSubstr;

using testing::HostileTest;
using testing::Phone;

TEST_F(HostileTest, ForgedUnsignedReplayedStaleAndRevokedCallsAreRefused) {
  Start(2, 3);
  v1::CheckInRequest req;
  req.set_eligible(true);
  const std::string nonce(16, 'n');
  // Unsigned.
  auto s = RawCheckIn("", phones_[0].key, NowMs(), nonce, req, /*sign=*/false);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(), HasSubstr("enroll"));
  // Unknown device.
  s = RawCheckIn("dev-nobody", phones_[0].key, NowMs(), nonce, req);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(), HasSubstr("unknown device"));
  // Signed by another device's key.
  s = RawCheckIn(phones_[0].id, phones_[1].key, NowMs(), nonce, req);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(), HasSubstr("signature"));
  // A valid call that answers at once (a check-in from a device that says it is not
  // eligible: authenticated, then rejected), then the same bytes again.
  v1::CheckInRequest ineligible;
  ineligible.set_eligible(false);
  const int64_t now = NowMs();
  s = RawCheckIn(phones_[0].id, phones_[0].key, now, nonce, ineligible);
  EXPECT_TRUE(s.ok()) << s.error_message();
  s = RawCheckIn(phones_[0].id, phones_[0].key, now, nonce, ineligible);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(), HasSubstr("replay"));
  // Ten minutes old.
  s = RawCheckIn(phones_[0].id, phones_[0].key, now - 600000, std::string(16, 'o'), ineligible);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(), HasSubstr("clock"));
  // Revoked (the store is shared with the running server through the same folder).
  {
    auto store = OpenSqliteStore(dir_);
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->RevokeDevice(phones_[2].id, "lost phone").ok());
  }
  s = RawCheckIn(phones_[2].id, phones_[2].key, NowMs(), std::string(16, 'r'), ineligible);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("lost phone"));
  // A used token.
  v1::EnrollRequest again;
  again.set_token("token-0");
  again.set_public_key(phones_[0].key.PublicRaw());
  auto e = device::CoordinatorClient::Enroll(channel_, again, absl::Seconds(5));
  EXPECT_EQ(e.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(e.status().message(), HasSubstr("already used"));
}

TEST_F(HostileTest, OversizedMalformedAndOutOfPhaseMessagesAreRefused) {
  Start(2, 3);
  auto client = Client(phones_[0]);
  v1::CheckInRequest big;
  big.set_client_version(std::string(10000, 'x'));
  auto r = client->CheckIn(big, absl::Seconds(5));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("too large"));
  // Bytes that are not a protobuf message.
  grpc::Status status = testing::RawUnaryCall(channel_, "/fedlora.v1.Coordinator/CheckIn",
                                              "\xff\xff\xff\xff\x0f not a protobuf", nullptr);
  EXPECT_FALSE(status.ok());
  // Secure-aggregation call while the round is selecting.
  v1::SecAggUpload up;
  up.set_round(1);
  auto p = client->SecAgg(secagg::Phase::kShareKeys, up, absl::Seconds(5));
  EXPECT_FALSE(p.ok());
  EXPECT_THAT(p.status().message(), HasSubstr("phase"));
  // A device that says it is not eligible is rejected at once with the reason (it sends a
  // bit, never its count of training windows).
  v1::CheckInRequest ineligible;
  ineligible.set_eligible(false);
  auto rejected = client->CheckIn(ineligible, absl::Seconds(5));
  ASSERT_TRUE(rejected.ok()) << rejected.status();
  ASSERT_TRUE(rejected->has_rejection());
  EXPECT_EQ(rejected->rejection().reason(), v1::REJECTION_TOO_FEW_EXAMPLES);
  EXPECT_THAT(rejected->rejection().detail(), HasSubstr("minimum"));
  // Still serving: another device's enrolment works.
  Phone extra = Enroll(3);
  EXPECT_FALSE(extra.id.empty());
}

// grpc.health.v1 answers SERVING for the service (HealthCheckRequest{service} and
// HealthCheckResponse{status = SERVING (1)} written by hand: two-field messages).
TEST_F(HostileTest, HealthCheckingIsServed) {
  Start(2, 3);
  const std::string service = "fedlora.v1.Coordinator";
  std::string bytes;
  grpc::Status status =
      testing::RawUnaryCall(channel_, "/grpc.health.v1.Health/Check",
                            std::string("\x0a") + char(service.size()) + service, &bytes);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(bytes, std::string("\x08\x01"));
}

TEST_F(HostileTest, StalledDownloadsAreBoundedAndCancelled) {
  Start(2, 3, /*dim=*/400000, /*download_timeout=*/absl::Seconds(1));
  auto stub = v1::Coordinator::NewStub(LazyChannel());
  // Three streams opened, none read.
  std::vector<std::unique_ptr<grpc::ClientContext>> ctxs;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::AdapterChunk>>> readers;
  for (int i = 0; i < 3; ++i) {
    ctxs.push_back(std::make_unique<grpc::ClientContext>());
    readers.push_back(OpenDownload(*stub, phones_[0], 1, ctxs.back().get()));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  // The third stream was refused at once (it carries no chunk).
  v1::AdapterChunk chunk;
  EXPECT_FALSE(readers[2]->Read(&chunk));
  EXPECT_EQ(readers[2]->Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  // Another device is served meanwhile, and a full download verifies.
  auto other = Client(phones_[1]);
  auto versions = OpenSqliteStore(dir_);
  ASSERT_TRUE(versions.ok());
  auto latest = (*versions)->LatestAdapter();
  ASSERT_TRUE(latest.ok());
  auto blob = other->Download(1, latest->sha256, dir_ + "/partial", absl::Seconds(30));
  ASSERT_TRUE(blob.ok()) << blob.status();
  EXPECT_EQ(blob->size(), latest->bytes);
  // The stalled streams are cancelled by the sweeper, and the device may download again.
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  for (int i = 0; i < 2; ++i) {
    v1::AdapterChunk c;
    while (readers[i]->Read(&c)) {
    }
    EXPECT_FALSE(readers[i]->Finish().ok());
  }
  auto mine = Client(phones_[0]);
  auto again = mine->Download(1, latest->sha256, dir_ + "/partial0", absl::Seconds(30));
  EXPECT_TRUE(again.ok()) << again.status();
}

}  // namespace
}  // namespace fedlora::coordinator
