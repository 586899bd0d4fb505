// SecAggDevice on its own: state machine discipline, input validation and abort messages.
#include "fedlora/secagg/device.h"

#include <gtest/gtest.h>

#include "fedlora/secagg/session_config.h"

namespace fedlora::secagg {
namespace {

class CapturingSender : public SendToServerInterface {
 public:
  void Send(const proto::SecAggDeviceMessage& m) override { sent.push_back(m); }
  std::vector<proto::SecAggDeviceMessage> sent;
};

proto::SecAggSessionConfig Config() {
  SeededRandom rng(1);
  SessionParams p;
  p.num_devices = 5;
  p.dim = 4;
  p.bits = 8;
  p.threshold = 3;
  return MakeSessionConfig(p, rng).value();
}

TEST(DeviceTest, AdvertisesTwoDistinctKeysBoundToTheRound) {
  CapturingSender sender;
  SeededRandom rng(2);
  auto dev = SecAggDevice::Create(1, Config(), &sender, &rng);
  ASSERT_TRUE(dev.ok());
  ASSERT_TRUE((*dev)->Start().ok());
  ASSERT_EQ(sender.sent.size(), 1u);
  const auto& m = sender.sent[0];
  EXPECT_EQ(m.device(), 1u);
  EXPECT_EQ(m.round_nonce(), Config().round_nonce());
  EXPECT_EQ(m.advertise_keys().enc_public_key().size(), 32u);
  EXPECT_NE(m.advertise_keys().enc_public_key(), m.advertise_keys().mask_public_key());
  EXPECT_EQ((*dev)->phase(), Phase::kShareKeys);
  EXPECT_EQ((*dev)->Start().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(DeviceTest, OutOfOrderServerMessageAbortsAndTellsTheServer) {
  CapturingSender sender;
  SeededRandom rng(3);
  auto dev = SecAggDevice::Create(0, Config(), &sender, &rng).value();
  ASSERT_TRUE(dev->Start().ok());
  proto::SecAggServerMessage unmask;
  unmask.mutable_unmasking_request()->add_survivors(1);
  const absl::Status st = dev->HandleMessage(unmask);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(dev->phase(), Phase::kAborted);
  ASSERT_EQ(sender.sent.size(), 2u);
  EXPECT_TRUE(sender.sent[1].has_abort());
  EXPECT_NE(sender.sent[1].abort().reason().find("UnmaskingRequest"), std::string::npos);
}

TEST(DeviceTest, ServerAbortEndsTheDeviceQuietly) {
  CapturingSender sender;
  SeededRandom rng(4);
  auto dev = SecAggDevice::Create(0, Config(), &sender, &rng).value();
  ASSERT_TRUE(dev->Start().ok());
  proto::SecAggServerMessage abort;
  abort.mutable_abort()->set_reason("too few devices");
  EXPECT_TRUE(dev->HandleMessage(abort).ok());
  EXPECT_EQ(dev->phase(), Phase::kAborted);
  EXPECT_NE(dev->abort_reason().find("too few devices"), std::string::npos);
  EXPECT_EQ(sender.sent.size(), 1u);
}

TEST(DeviceTest, ValidatesInputAndId) {
  CapturingSender sender;
  SeededRandom rng(5);
  EXPECT_EQ(SecAggDevice::Create(5, Config(), &sender, &rng).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto dev = SecAggDevice::Create(0, Config(), &sender, &rng).value();
  EXPECT_EQ(dev->SetInput({1, 2, 3}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(dev->SetInput({1, 2, 3, 256}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(dev->SetInput({1, 2, 3, 255}).ok());
}

}  // namespace
}  // namespace fedlora::secagg
