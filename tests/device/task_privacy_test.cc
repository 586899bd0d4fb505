// The noise checks a device makes on a task, and what a task costs the device itself (its
// unamplified charge against the coordinator).
#include "fedlora/device/task_privacy.h"

#include <grpcpp/grpcpp.h>

#include <cmath>

#include "device_testutil.h"
#include "fedlora/common/ed25519.h"
#include "fedlora/common/random.h"
#include "fedlora/device/coordinator_client.h"
#include "fedlora/device/participation.h"
#include "fedlora/privacy/ddg_accounting.h"
#include "fedlora/privacy/ddg_count.h"
#include "fedlora/privacy/rdp.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora::device {
namespace {

using ::fedlora::testing::DistributedRoundParams;
using ::fedlora::testing::TaskFor;
using ::testing::HasSubstr;

constexpr size_t kDim = 1000;

absl::Status Check(const privacy::RoundPrivacyParams& p, uint32_t min_sum = 16,
                   double min_noise = 0.3) {
  DevicePolicy policy;
  policy.min_noise_multiplier = min_noise;
  return CheckTask(TaskFor(p, min_sum), p, policy);
}

// A task goes through the same path as on a phone: SubmitUpdate refuses before any call with
// FAILED_PRECONDITION (a task that passes the checks fails later, on the test's incomplete
// secure-aggregation session or the channel that leads nowhere).
absl::Status Submit(const privacy::RoundPrivacyParams& p) {
  auto key = Ed25519Key::Generate();
  EXPECT_TRUE(key.ok());
  auto channel = grpc::CreateChannel("127.0.0.1:1", grpc::InsecureChannelCredentials());
  CoordinatorClient client(channel, &*key, "dev-test");
  DevicePolicy policy;
  policy.phase_timeout = absl::Seconds(1);
  SecureRandom rng;
  ParticipationResult result;
  std::vector<float> delta(p.dim, 0.01f);
  return SubmitUpdate(client, TaskFor(p, 16), delta, policy, rng, &result);
}

TEST(TaskPrivacyTest, AnHonestTaskPasses) {
  for (bool adaptive : {false, true}) {
    SCOPED_TRACE(adaptive);
    const auto p = DistributedRoundParams(kDim, 20, 16, 1.0, adaptive);
    EXPECT_TRUE(Check(p).ok()) << Check(p);
    // The composed multiplier of the coordinator's split is its total z.
    EXPECT_NEAR(ComposedNoiseMultiplier(p), 1.0, 1e-12);
    const absl::Status later = Submit(p);
    EXPECT_FALSE(later.ok());
    EXPECT_NE(later.code(), absl::StatusCode::kFailedPrecondition) << later;
  }
}

// A coordinator keeps the value's noise and puts almost none on the clipped count: the value
// multiplier alone passes the old check; the round's composed multiplier does not.
TEST(TaskPrivacyTest, NearZeroCountNoiseIsRefused) {
  auto p = DistributedRoundParams(kDim, 20, 16, 1.0, /*adaptive=*/true);
  auto weak = privacy::ChooseCountDdgParams(0.05, 20, 16, 20);  // 2 s = 0.1 < 0.3
  ASSERT_TRUE(weak.ok());
  ASSERT_GE(weak->local_sigma2, 0.25);  // the discrete Gaussian itself is still in range
  p.count = *weak;
  EXPECT_GE(p.value.noise_multiplier, 0.3);
  const absl::Status s = Check(p);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("clipped count 0.1"));
  EXPECT_THAT(s.message(), HasSubstr("hint:"));
  EXPECT_EQ(Submit(p).code(), absl::StatusCode::kFailedPrecondition);
}

// The sent derived values of the count are recomputed, not trusted: an honest stddev with a
// tiny per-device variance (what the device would actually add) is refused.
TEST(TaskPrivacyTest, CountVarianceThatDoesNotFollowFromItsStddevIsRefused) {
  auto p = DistributedRoundParams(kDim, 20, 16, 1.0, /*adaptive=*/true);
  p.count->local_sigma2 = 1e-3;
  absl::Status s = Check(p);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("not what its stddev"));
  EXPECT_EQ(Submit(p).code(), absl::StatusCode::kFailedPrecondition);
  p = DistributedRoundParams(kDim, 20, 16, 1.0, /*adaptive=*/true);
  p.count->scale *= 2;
  EXPECT_EQ(Check(p).code(), absl::StatusCode::kFailedPrecondition);
  // The count calibrated for fewer survivors than the values.
  p = DistributedRoundParams(kDim, 20, 16, 1.0, /*adaptive=*/true);
  auto other = privacy::ChooseCountDdgParams(p.count->count_stddev, 20, 4, 20);
  ASSERT_TRUE(other.ok());
  p.count = *other;
  s = Check(p);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("calibrated for 4 of 20"));
}

// Each device's discrete Gaussian must have sigma^2 >= 1/4 (the DDG bound's range), even when
// the device's own minimum multiplier would allow the noise.
TEST(TaskPrivacyTest, ValueVarianceBelowAQuarterIsRefused) {
  auto p = DistributedRoundParams(kDim, 20, 16, 1.0, false);
  p.value.noise_multiplier = 1e-9;
  auto ddg = privacy::ChooseDdgParams(p.value);
  ASSERT_TRUE(ddg.ok());
  ASSERT_LT(ddg->local_sigma2_scaled, 0.25);
  const absl::Status s = Check(p, 16, /*min_noise=*/0);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("sigma^2"));
}

TEST(TaskPrivacyTest, ComposedMultiplierBelowTheMinimumAndShortSessionsAreRefused) {
  // z = 0.5 total: passes a minimum of 0.5, not 0.6 (the value's part alone is above 0.5).
  const auto p = DistributedRoundParams(kDim, 20, 16, 0.5, true);
  EXPECT_GT(p.value.noise_multiplier, 0.5);
  EXPECT_TRUE(Check(p, 16, 0.5).ok());
  EXPECT_EQ(Check(p, 16, 0.6).code(), absl::StatusCode::kFailedPrecondition);
  // The session would unmask sums of 15 while the noise is calibrated for 16.
  const absl::Status s = Check(p, 15, 0.5);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("calibrated for 16"));
}

TEST(TaskPrivacyTest, PolicyIsValidated) {
  DevicePolicy p;
  EXPECT_TRUE(ValidatePolicy(p).ok());
  EXPECT_EQ(p.epsilon_budget, kDefaultDeviceEpsilonBudget);
  EXPECT_EQ(p.delta, privacy::kMaxDefaultDelta);
  p.epsilon_budget = 0;
  EXPECT_EQ(ValidatePolicy(p).code(), absl::StatusCode::kInvalidArgument);
  p.epsilon_budget = 8;
  p.delta = 1;
  EXPECT_EQ(ValidatePolicy(p).code(), absl::StatusCode::kInvalidArgument);
}

// The unamplified charge is privacy::ComputeRoundRdp at q = 1 of the round's releases (value
// and count composed), never below the continuous Gaussian of the nominal multiplier, and its
// epsilon over 100 rounds far above what they cost amplified by a sampling rate of 0.05.
TEST(TaskPrivacyTest, UnamplifiedChargeIsTheRoundRdpAtQOne) {
  const std::vector<double> orders = privacy::DefaultRdpOrders();
  for (bool adaptive : {false, true}) {
    SCOPED_TRACE(adaptive);
    const auto p = DistributedRoundParams(kDim, 20, 16, 1.0, adaptive);
    const v1::Task task = TaskFor(p, 16);
    auto charge = UnamplifiedRoundRdp(task, p, orders);
    ASSERT_TRUE(charge.ok()) << charge.status();
    auto ddg = privacy::ChooseDdgParams(p.value);
    ASSERT_TRUE(ddg.ok());
    privacy::RoundMechanism m;
    m.q = 1;
    m.ddg.push_back(privacy::DdgValueMechanism(*ddg));
    if (adaptive) m.ddg.push_back(privacy::CountMechanism(*p.count));
    auto expected = privacy::ComputeRoundRdp(m, orders);
    ASSERT_TRUE(expected.ok());
    m.q = 0.05;
    auto amplified = privacy::ComputeRoundRdp(m, orders);
    ASSERT_TRUE(amplified.ok());
    for (size_t i = 0; i < orders.size(); ++i) {
      EXPECT_DOUBLE_EQ((*charge)[i], (*expected)[i]) << orders[i];
      double parts = 0;  // the composition: the releases' RDP added
      for (const auto& d : m.ddg) parts += privacy::DdgSumRdp(d, orders[i]);
      EXPECT_NEAR((*charge)[i], parts, 1e-12 * parts) << orders[i];
      EXPECT_GE((*charge)[i], std::ceil(orders[i]) / 2 * (1 - 1e-9)) << orders[i];
    }
    // Over 100 rounds, the device's own epsilon is many times the amplified one.
    std::vector<double> own(orders.size()), sampled(orders.size());
    for (size_t i = 0; i < orders.size(); ++i) {
      own[i] = 100 * (*charge)[i];
      sampled[i] = 100 * (*amplified)[i];
    }
    auto eps = privacy::RdpToEpsilon(orders, own, 1e-5);
    auto eps_amplified = privacy::RdpToEpsilon(orders, sampled, 1e-5);
    ASSERT_TRUE(eps.ok() && eps_amplified.ok());
    EXPECT_GT(eps->epsilon, 4 * eps_amplified->epsilon);
  }
}

}  // namespace
}  // namespace fedlora::device
