// One coordinator per state folder (issue 31): ProcessLock semantics, and a second
// CoordinatorServer on a folder that one already serves is refused naming the holder's pid,
// without disturbing the first.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "fedlora/common/process_lock.h"
#include "fedlora/coordinator/coordinator_server.h"
#include "fedlora/device/coordinator_client.h"
#include "gmock/gmock.h"
#include "grpc_testutil.h"
#include "gtest/gtest.h"

namespace fedlora::coordinator {
namespace {

using ::testing::HasSubstr;

std::string TestDir() {
  return ::testing::TempDir() + "/state_lock_" +
         ::testing::UnitTest::GetInstance()->current_test_info()->name();
}

TEST(ProcessLockTest, ExclusiveWhileHeldWithTheHoldersPidAndFreeAfterwards) {
  const std::string dir = TestDir();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/x.lock";
  {
    auto first = ProcessLock::Acquire(path);
    ASSERT_TRUE(first.ok()) << first.status();
    std::ifstream in(path);
    int written = 0;
    in >> written;
    EXPECT_EQ(written, getpid());
    pid_t holder = 0;
    auto second = ProcessLock::Acquire(path, &holder);
    ASSERT_FALSE(second.ok());
    EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(second.status().message(), HasSubstr("held by pid " + std::to_string(getpid())));
    EXPECT_EQ(holder, getpid());
  }
  EXPECT_TRUE(ProcessLock::Acquire(path).ok());  // released with the first
  auto nowhere = ProcessLock::Acquire(dir + "/no/such/folder/x.lock");
  EXPECT_FALSE(nowhere.ok());
  EXPECT_THAT(nowhere.status().message(), HasSubstr("no/such/folder"));
}

TEST(StateLockTest, SecondServerOnTheSameFolderIsRefusedAndTheFirstKeepsServing) {
  const std::string dir = TestDir();
  testing::TestCoordinatorOptions t;
  auto first = testing::StartTestCoordinator(dir, t);
  ASSERT_TRUE(first.ok()) << first.status();
  const ServerOptions o = testing::TestServerOptions(dir, t);
  auto second = CoordinatorServer::Start(o);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.status().message(), HasSubstr("in use by another coordinator"));
  EXPECT_THAT(second.status().message(), HasSubstr("pid " + std::to_string(getpid())));
  EXPECT_THAT(second.status().message(), HasSubstr("hint"));
  // The first one still serves.
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string((*first)->port()),
                                     grpc::InsecureChannelCredentials());
  auto key = Ed25519Key::Generate();
  ASSERT_TRUE(key.ok());
  v1::EnrollRequest req;
  req.set_token(testing::EnrolmentToken(0));
  req.set_public_key(key->PublicRaw());
  EXPECT_TRUE(device::CoordinatorClient::Enroll(channel, req, absl::Seconds(5)).ok());
  // Once it is gone, the folder can be served again.
  first->reset();
  auto third = CoordinatorServer::Start(o);
  EXPECT_TRUE(third.ok()) << third.status();
}

}  // namespace
}  // namespace fedlora::coordinator
