// Issue 31 hardening, in-process: what an unauthenticated or careless client can make the
// coordinator do. Request bodies are size-checked before they are parsed and refused with a
// status that says what is wrong; enrolment attempts are rate-limited per address and bad
// tokens cost no write transaction. After each, the coordinator still serves normal calls.
#include <grpcpp/grpcpp.h>
#include <sqlite3.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "fedlora/common/ed25519.h"
#include "fedlora/coordinator/coordinator_server.h"
#include "fedlora/device/coordinator_client.h"
#include "gmock/gmock.h"
#include "grpc_testutil.h"
#include "gtest/gtest.h"

namespace fedlora::coordinator {
namespace {

using ::testing::HasSubstr;

class LimitsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/limits_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    testing::TestCoordinatorOptions t;
    t.goal = 2;
    t.devices = 2;
    t.tokens = 4;
    auto server = testing::StartTestCoordinator(dir_, t);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                   grpc::InsecureChannelCredentials());
  }

  absl::StatusOr<v1::EnrollResponse> Enroll(const std::string& token) {
    auto key = Ed25519Key::Generate();
    if (!key.ok()) return key.status();
    v1::EnrollRequest req;
    req.set_token(token);
    req.set_public_key(key->PublicRaw());
    keys_.push_back(std::move(*key));
    return device::CoordinatorClient::Enroll(channel_, req, absl::Seconds(5));
  }

  // A signed call that the coordinator answers at once: the device asks which release to run.
  absl::Status NormalCall() {
    auto enrolled = Enroll(testing::EnrolmentToken(next_token_++));
    if (!enrolled.ok()) return enrolled.status();
    device::CoordinatorClient client(channel_, &keys_.back(), enrolled->device_id());
    v1::ReleaseRequest req;
    req.set_base_model_sha256(std::string(64, 'a'));
    return client.GetRelease(req, absl::Seconds(5)).status();
  }

  std::string dir_;
  std::unique_ptr<CoordinatorServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::vector<Ed25519Key> keys_;
  int next_token_ = 0;
};

const char kGarbage[] = "\xff\xff\xff\xff\x0f not a protobuf";

// Bytes that are not the method's message get INVALID_ARGUMENT naming the message type, not
// gRPC's bare UNIMPLEMENTED; unary and streaming methods alike.
TEST_F(LimitsTest, UnparseableBodiesAreInvalidArgumentNamingTheMessage) {
  struct Case {
    const char* method;
    const char* message;
  };
  for (const Case& c :
       {Case{"CheckIn", "fedlora.v1.CheckInRequest"}, Case{"Enroll", "fedlora.v1.EnrollRequest"},
        Case{"GetRelease", "fedlora.v1.ReleaseRequest"},
        Case{"DownloadAdapter", "fedlora.v1.DownloadRequest"}}) {
    SCOPED_TRACE(c.method);
    grpc::Status s = testing::RawUnaryCall(
        channel_, std::string("/fedlora.v1.Coordinator/") + c.method, kGarbage, nullptr);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
    EXPECT_THAT(s.error_message(),
                HasSubstr(std::string("request body is not a valid ") + c.message));
    EXPECT_THAT(s.error_message(), HasSubstr("failed to parse"));
  }
  EXPECT_TRUE(NormalCall().ok());
}

// A body over the method's limit is refused by its size, before parsing: bytes that would not
// even parse get "too large", and an unauthenticated 8 MiB secure-aggregation upload is
// refused for its missing signature metadata before its bytes are looked at.
TEST_F(LimitsTest, OversizedBodiesAreRefusedBeforeParsing) {
  const std::string big_garbage(64 << 10, '\xff');
  grpc::Status s =
      testing::RawUnaryCall(channel_, "/fedlora.v1.Coordinator/CheckIn", big_garbage, nullptr);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("too large"));
  EXPECT_THAT(s.error_message(), HasSubstr("before parsing"));
  s = testing::RawUnaryCall(channel_, "/fedlora.v1.Coordinator/Enroll", big_garbage, nullptr);
  EXPECT_THAT(s.error_message(), HasSubstr("too large"));

  const std::string upload(8 << 20, '\xff');
  s = testing::RawUnaryCall(channel_, "/fedlora.v1.Coordinator/MaskedInput", upload, nullptr);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("missing call metadata"));
  // Still serving, at once.
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(NormalCall().ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

// One address guessing tokens is cut off after the burst (RESOURCE_EXHAUSTED, saying when to
// try again); a good token from that address works again once the bucket refilled, and good
// enrolments never drain it.
TEST_F(LimitsTest, EnrolmentFloodFromOneAddressIsRateLimited) {
  const RateLimit defaults;  // what the test coordinator runs with
  int denied = 0, exhausted = 0;
  std::string exhausted_message;
  for (int i = 0; i < 3 * defaults.burst; ++i) {
    auto r = Enroll("guess-" + std::to_string(i));
    ASSERT_FALSE(r.ok());
    if (r.status().code() == absl::StatusCode::kPermissionDenied) {
      ++denied;
      EXPECT_EQ(exhausted, 0) << "a denial after the cut-off: " << r.status();
    } else {
      ASSERT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted) << r.status();
      ++exhausted;
      exhausted_message = std::string(r.status().message());
    }
  }
  EXPECT_GE(denied, defaults.burst);
  EXPECT_LE(denied, defaults.burst + 1);  // the refill during the flood is a fraction of one
  EXPECT_GE(exhausted, defaults.burst);
  EXPECT_THAT(exhausted_message, HasSubstr("try again in"));
  // A good token is refused too while the bucket is empty (it is not looked at)...
  auto early = Enroll(testing::EnrolmentToken(0));
  EXPECT_EQ(early.status().code(), absl::StatusCode::kResourceExhausted);
  // ...and accepted once a token refilled; successes give their token back.
  std::this_thread::sleep_for(
      std::chrono::milliseconds(static_cast<int>(1000 / defaults.rate_per_second) + 500));
  for (int i = 0; i < 3; ++i) {
    auto ok = Enroll(testing::EnrolmentToken(i));
    EXPECT_TRUE(ok.ok()) << i << ": " << ok.status();
  }
}

// Unknown and used tokens are refused with a read: while another connection holds the
// database's write lock, a bad token is still answered at once (a write transaction would
// wait for the lock).
TEST_F(LimitsTest, BadTokensAreRefusedWithoutAWriteTransaction) {
  ASSERT_TRUE(Enroll(testing::EnrolmentToken(0)).ok());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ + "/coordinator.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  const auto start = std::chrono::steady_clock::now();
  auto unknown = Enroll("no-such-token");
  auto used = Enroll(testing::EnrolmentToken(0));
  const auto took = std::chrono::steady_clock::now() - start;
  sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kPermissionDenied) << unknown.status();
  EXPECT_THAT(unknown.status().message(), HasSubstr("unknown enrolment token"));
  EXPECT_EQ(used.status().code(), absl::StatusCode::kPermissionDenied) << used.status();
  EXPECT_THAT(used.status().message(), HasSubstr("already used"));
  EXPECT_LT(took, std::chrono::seconds(3));
  // The lock is gone: a good token enrols.
  EXPECT_TRUE(Enroll(testing::EnrolmentToken(1)).ok());
}

}  // namespace
}  // namespace fedlora::coordinator
