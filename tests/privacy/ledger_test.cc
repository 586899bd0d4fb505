#include "fedlora/privacy/ledger.h"

#include <cmath>

#include "fedlora/privacy/ddg_accounting.h"
#include "fedlora/privacy/rdp.h"
#include "gtest/gtest.h"

namespace fedlora::privacy {
namespace {

TEST(LedgerTest, AdmitsUntilBudgetIsSpent) {
  auto ledger = PrivacyLedger::Create({2.0, 1e-5});
  ASSERT_TRUE(ledger.ok());
  auto charge = GaussianParticipationRdp(4.0, ledger->orders());
  ASSERT_TRUE(charge.ok());
  int joined = 0;
  for (int round = 0; round < 1000; ++round) {
    auto may = ledger->MayParticipate("alice", *charge);
    ASSERT_TRUE(may.ok());
    if (!*may) break;
    ASSERT_TRUE(ledger->RecordParticipation("alice", *charge).ok());
    ++joined;
  }
  // Cross-check against the accountant: `joined` rounds fit, one more does not.
  auto fits = ComputeEpsilon({1.0, 4.0, joined, 1e-5});
  auto over = ComputeEpsilon({1.0, 4.0, joined + 1, 1e-5});
  EXPECT_LE(fits->epsilon, 2.0);
  EXPECT_GT(over->epsilon, 2.0);
  EXPECT_GT(joined, 0);
  EXPECT_EQ(ledger->Participations("alice"), joined);
  EXPECT_NEAR(*ledger->SpentEpsilon("alice"), fits->epsilon, 1e-12);
  EXPECT_EQ(ledger->Participations("bob"), 0);
  EXPECT_TRUE(*ledger->MayParticipate("bob", *charge));
}

TEST(LedgerTest, JsonRoundTripPreservesState) {
  auto ledger = PrivacyLedger::Create({3.0, 1e-6}, {2, 4, 8, 16, 32});
  ASSERT_TRUE(ledger.ok());
  auto charge = GaussianParticipationRdp(2.0, ledger->orders());
  ASSERT_TRUE(ledger->RecordParticipation("u1", *charge).ok());
  ASSERT_TRUE(ledger->RecordParticipation("u1", *charge).ok());
  ASSERT_TRUE(ledger->RecordParticipation("u2", *charge).ok());
  auto j = ledger->ToJson();
  auto back = PrivacyLedger::FromJson(nlohmann::json::parse(j.dump()));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->Participations("u1"), 2);
  EXPECT_EQ(back->num_users(), 2u);
  EXPECT_DOUBLE_EQ(*back->SpentEpsilon("u1"), *ledger->SpentEpsilon("u1"));
  EXPECT_EQ(back->ToJson(), j);
  nlohmann::json broken = j;
  broken["users"]["u1"]["rdp"] = {1.0};
  EXPECT_FALSE(PrivacyLedger::FromJson(broken).ok());
  EXPECT_FALSE(PrivacyLedger::FromJson(nlohmann::json::parse("[1,2]")).ok());
  EXPECT_FALSE(PrivacyLedger::FromJson(nlohmann::json{{"version", 1}}).ok());
}

TEST(LedgerTest, RejectsBadBudgetsAndCurves) {
  EXPECT_FALSE(PrivacyLedger::Create({0, 1e-5}).ok());
  EXPECT_FALSE(PrivacyLedger::Create({1, 0}).ok());
  EXPECT_FALSE(PrivacyLedger::Create({1, 1}).ok());
  auto ledger = PrivacyLedger::Create({1, 1e-5});
  EXPECT_FALSE(ledger->RecordParticipation("x", {1.0, 2.0}).ok());
  EXPECT_EQ(ledger->Participations("x"), 0);
  EXPECT_FALSE(GaussianParticipationRdp(0, {2}).ok());
}

DdgConfig DdgBase() {
  DdgConfig c;
  c.dim = 1 << 16;
  c.expected_clients = 100;
  c.l2_clip = 1.0;
  c.noise_multiplier = 1.0;
  c.bits = 20;
  return c;
}

TEST(DdgAccountingTest, ApproachesContinuousGaussianWithFineQuantization) {
  // With 20 bits the rounding inflation and tau are small: epsilon should be close to (and not
  // below) the continuous Gaussian with the same noise multiplier.
  auto p = ChooseDdgParams(DdgBase());
  ASSERT_TRUE(p.ok());
  auto ddg = ComputeDdgEpsilon(*p, 0.01, 1000, 1e-5);
  auto gauss = ComputeEpsilon({0.01, 1.0, 1000, 1e-5});
  ASSERT_TRUE(ddg.ok() && gauss.ok()) << ddg.status();
  EXPECT_GE(ddg->epsilon, gauss->epsilon * 0.999);
  EXPECT_LE(ddg->epsilon, gauss->epsilon * 1.5);
}

TEST(DdgAccountingTest, CoarseQuantizationCostsPrivacy) {
  DdgConfig fine = DdgBase(), coarse = DdgBase();
  coarse.bits = 12;
  auto pf = ChooseDdgParams(fine);
  auto pc = ChooseDdgParams(coarse);
  ASSERT_TRUE(pf.ok() && pc.ok());
  auto ef = ComputeDdgEpsilon(*pf, 1.0, 10, 1e-5);
  auto ec = ComputeDdgEpsilon(*pc, 1.0, 10, 1e-5);
  ASSERT_TRUE(ef.ok() && ec.ok());
  EXPECT_GT(ec->epsilon, ef->epsilon);
  DdgConfig noiseless = DdgBase();
  noiseless.noise_multiplier = 0;
  EXPECT_FALSE(ComputeDdgEpsilon(*ChooseDdgParams(noiseless), 1.0, 1, 1e-5).ok());
  EXPECT_FALSE(ComputeDdgRdp(*pf, 0.0, {2}).ok());
}

TEST(DdgAccountingTest, FeedsTheLedger) {
  auto ledger = PrivacyLedger::Create({5.0, 1e-5});
  auto p = ChooseDdgParams(DdgBase());
  auto rdp = ComputeDdgRdp(*p, 1.0, ledger->orders());
  ASSERT_TRUE(rdp.ok());
  ASSERT_TRUE(ledger->RecordParticipation("dev", *rdp).ok());
  EXPECT_GT(*ledger->SpentEpsilon("dev"), 0);
}

}  // namespace
}  // namespace fedlora::privacy
