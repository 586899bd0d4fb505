#include "fedlora/privacy/participation_accountant.h"

#include <cmath>
#include <string>
#include <vector>

#include "fedlora/privacy/ddg_accounting.h"
#include "fedlora/privacy/rdp.h"
#include "gtest/gtest.h"

namespace fedlora::privacy {
namespace {

DdgParams ValueParams(int clients) {
  DdgConfig c;
  c.dim = 4096;
  c.expected_clients = clients;
  c.min_clients = clients;
  c.l2_clip = 1.0;
  c.noise_multiplier = 1.0;
  c.bits = 20;
  return *ChooseDdgParams(c);
}

RoundMechanism Poisson(double q, const DdgParams& p) {
  RoundMechanism m;
  m.sampling = Sampling::kPoisson;
  m.q = q;
  m.ddg = {DdgValueMechanism(p)};
  return m;
}

TEST(ParticipationAccountantTest, ChargesEachRoundWithoutAmplification) {
  const DdgParams p = ValueParams(20);
  ParticipationAccountant acc(1e-5);
  // 13 rounds at q = 0.013 for "a"; "b" takes part in 2 of them.
  for (int r = 0; r < 13; ++r) {
    std::vector<std::string> who = {"a"};
    if (r < 2) who.push_back("b");
    ASSERT_TRUE(acc.Charge(who, Poisson(0.013, p)).ok());
  }
  // Against the coordinator, 13 rounds cost what 13 unsampled DDG releases cost.
  auto unsampled = ComputeDdgEpsilon(p, 1.0, 13, 1e-5);
  ASSERT_TRUE(unsampled.ok());
  EXPECT_NEAR(acc.Epsilon("a"), unsampled->epsilon, 1e-9 * unsampled->epsilon);
  // ...far more than the amplified figure an observer of 1,000 such rounds is charged.
  auto amplified = ComputeDdgEpsilon(p, 0.013, 1000, 1e-5);
  ASSERT_TRUE(amplified.ok());
  EXPECT_GT(acc.Epsilon("a"), 3 * amplified->epsilon);
  EXPECT_LT(acc.Epsilon("b"), acc.Epsilon("a"));
  EXPECT_EQ(acc.WorstEpsilon(), acc.Epsilon("a"));
  EXPECT_EQ(acc.MaxRounds(), 13);
  EXPECT_EQ(acc.participants(), 2u);
  EXPECT_EQ(acc.Epsilon("never-selected"), 0);
}

TEST(ParticipationAccountantTest, KeepsTheRoundsRelationAtQOne) {
  // Poisson rounds: add/remove at q = 1, whatever q the observers were charged at.
  const DdgParams p = ValueParams(20);
  const auto orders = DefaultRdpOrders();
  auto poisson = RdpAgainstCoordinator(Poisson(0.5, p), orders);
  auto ref = ComputeDdgRdp(p, 1.0, orders);
  ASSERT_TRUE(poisson.ok() && ref.ok());
  for (size_t i = 0; i < orders.size(); ++i) EXPECT_DOUBLE_EQ((*poisson)[i], (*ref)[i]);
  // Fixed-size cohorts: replace-one (sensitivity doubled) at q = 1, never below the amplified
  // replace-one charge an observer gets.
  RoundMechanism fixed = Poisson(0.1, p);
  fixed.sampling = Sampling::kFixedSize;
  auto coord = RdpAgainstCoordinator(fixed, orders);
  auto observers = ComputeRoundRdp(fixed, orders);
  ASSERT_TRUE(coord.ok() && observers.ok());
  for (size_t i = 0; i < orders.size(); ++i) {
    if (orders[i] == std::floor(orders[i])) {
      const double doubled = DdgSumRdp(ReplaceOne(DdgValueMechanism(p)), orders[i]);
      EXPECT_NEAR((*coord)[i], doubled, 1e-9 * doubled) << orders[i];
    }
    EXPECT_GE((*coord)[i], (*observers)[i]) << orders[i];
  }
}

TEST(ParticipationAccountantTest, FewerSurvivorsCostMore) {
  // The survivor minimum is what protects a user from the coordinator: noise calibrated for
  // sums of 5 devices gives each device more noise of its own than for sums of 50.
  ParticipationAccountant small(1e-5), large(1e-5);
  ASSERT_TRUE(small.Charge({"a"}, Poisson(1, ValueParams(5))).ok());
  ASSERT_TRUE(large.Charge({"a"}, Poisson(1, ValueParams(50))).ok());
  EXPECT_LT(small.Epsilon("a"), large.Epsilon("a"));
}

TEST(ParticipationAccountantTest, CentralRoundsGiveNoProtectionAgainstTheCoordinator) {
  RoundMechanism central;
  central.q = 0.01;
  central.gaussian_noise_multiplier = 1.0;
  ParticipationAccountant acc(1e-5);
  ASSERT_TRUE(acc.Charge({"a"}, central).ok());
  EXPECT_TRUE(std::isinf(acc.Epsilon("a")));
  EXPECT_EQ(FormatEpsilon(acc.WorstEpsilon()), "unbounded");
  EXPECT_EQ(FormatEpsilon(2.5), "2.5");
}

TEST(ParticipationAccountantTest, ABadMechanismChangesNothing) {
  ParticipationAccountant acc(1e-5);
  RoundMechanism bad;                           // distributed, but no release
  bad.ddg = {DdgSumMechanism{1, 1, 0, 10, 1}};  // no noise
  EXPECT_FALSE(acc.Charge({"a"}, bad).ok());
  EXPECT_EQ(acc.participants(), 0u);
}

}  // namespace
}  // namespace fedlora::privacy
