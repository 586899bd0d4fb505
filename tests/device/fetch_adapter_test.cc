// The global adapter's cache path (device/src/participation.cc, FetchAdapter) is built from
// the coordinator's adapter_sha256: anything but 64 lower-case hex characters is refused
// before a path is built or a byte is fetched.
#include <filesystem>

#include "fedlora/common/ed25519.h"
#include "fedlora/device/participation.h"
#include "fedlora/privacy/params_wire.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"

namespace fedlora::device {
namespace {

namespace fs = std::filesystem;

// A task every other check accepts (distributed DP, noise 1, sums of 16 devices).
v1::Task AcceptableTask() {
  privacy::RoundPrivacyParams p;
  p.mode = privacy::DpMode::kDistributed;
  p.dim = 100;
  p.clip = 1.0;
  p.value.dim = 100;
  p.value.expected_clients = 20;
  p.value.min_clients = 16;
  p.value.l2_clip = 1.0;
  p.value.noise_multiplier = 1.0;
  p.value.bits = 20;
  p.rotation_seed = 77;
  v1::Task task;
  task.set_round(1);
  task.set_adapter_version(1);
  *task.mutable_privacy() = privacy::ParamsToProto(p);
  task.mutable_secagg()->set_min_sum_devices(16);
  task.mutable_secagg()->set_dim(100);
  return task;
}

TEST(FetchAdapterTest, AMalformedAdapterSha256IsRefusedBeforeAnythingIsFetched) {
  const fs::path root = fs::path(::testing::TempDir()) / "fetch_adapter_sha";
  fs::remove_all(root);
  fs::create_directories(root / "state");
  auto key = Ed25519Key::Generate();
  ASSERT_TRUE(key.ok());
  // Nothing listens there: a fetch would fail as UNAVAILABLE, not INVALID_ARGUMENT.
  CoordinatorClient client(grpc::CreateChannel("127.0.0.1:1", grpc::InsecureChannelCredentials()),
                           &*key, "device-1");
  DeviceData data{nullptr, std::string(64, 'a'), {"some text"}, (root / "state").string()};
  DevicePolicy policy;
  for (const std::string& bad : {std::string("../../escape"), std::string(64, 'A'),
                                 std::string(63, 'a'), std::string(63, 'a') + "/", std::string()}) {
    v1::Task task = AcceptableTask();
    task.set_adapter_sha256(bad);
    SecureRandom rng;
    auto r = Participate(client, data, task, policy, rng);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad << ": " << r.status();
    EXPECT_THAT(r.status().message(), ::testing::HasSubstr("adapter_sha256")) << bad;
  }
  EXPECT_FALSE(fs::exists(root / "escape.blob.partial"));
  fs::remove_all(root);
}

}  // namespace
}  // namespace fedlora::device
