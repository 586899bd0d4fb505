// CoordinatorClient::SecAgg to the aggregator a task names (multi-host, docs/coordinator.md
// "Aggregator processes"): refused without channel options, dialled with them (the options'
// rules apply to the aggregator's address), the coordinator's channel when none is named.
#include "fedlora/common/ed25519.h"
#include "fedlora/device/coordinator_client.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"

namespace fedlora::device {
namespace {

TEST(AggregatorAddressTest, TheTasksAggregatorIsDialledWithTheCoordinatorsChannelOptions) {
  auto key = Ed25519Key::Generate();
  ASSERT_TRUE(key.ok());
  // Nothing listens at the coordinator's address.
  CoordinatorClient client(grpc::CreateChannel("127.0.0.1:1", grpc::InsecureChannelCredentials()),
                           &*key, "device-1");
  v1::SecAggUpload upload;
  upload.set_round(1);
  auto no_options =
      client.SecAgg(secagg::Phase::kAdvertiseKeys, upload, absl::Seconds(1), "10.1.2.3:50071");
  EXPECT_EQ(no_options.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(no_options.status().message(), ::testing::HasSubstr("10.1.2.3:50071"));
  ChannelOptions o;
  o.insecure = true;  // plaintext: loopback only, for the aggregator's address too
  client.set_channel_options(o);
  auto off_loopback =
      client.SecAgg(secagg::Phase::kAdvertiseKeys, upload, absl::Seconds(1), "10.1.2.3:50071");
  EXPECT_EQ(off_loopback.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(off_loopback.status().message(), ::testing::HasSubstr("10.1.2.3:50071"));
  // No aggregator named: the coordinator's own channel (nothing listens: UNAVAILABLE).
  auto own = client.SecAgg(secagg::Phase::kAdvertiseKeys, upload, absl::Seconds(1));
  EXPECT_EQ(own.status().code(), absl::StatusCode::kUnavailable) << own.status();
}

}  // namespace
}  // namespace fedlora::device
