// The device's own privacy ledger: composition across rounds, the budget, and what survives
// a crash (a torn last line) or damage.
#include "fedlora/device/device_ledger.h"

#include <sys/stat.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "device_testutil.h"
#include "fedlora/common/file_util.h"
#include "fedlora/device/task_privacy.h"
#include "fedlora/privacy/rdp.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora::device {
namespace {

using ::fedlora::testing::DistributedRoundParams;
using ::fedlora::testing::TaskFor;
using ::testing::HasSubstr;

class DeviceLedgerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/device_ledger_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    const auto p = DistributedRoundParams(1000, 20, 16, 1.0, /*adaptive=*/true);
    auto c = UnamplifiedRoundRdp(TaskFor(p, 16), p, privacy::DefaultRdpOrders());
    ASSERT_TRUE(c.ok()) << c.status();
    charge_ = *c;
  }

  DeviceLedgerEntry Entry(uint64_t round) {
    DeviceLedgerEntry e;
    e.round = round;
    e.unix_seconds = 1700000000 + static_cast<int64_t>(round);
    e.noise_multiplier = 1;
    e.rdp = charge_;
    e.coordinator_epsilon = 0.1 * static_cast<double>(round);
    e.coordinator_delta = 1e-5;
    return e;
  }

  std::string File() { return dir_ + "/" + DeviceLedger::kFileName; }

  std::string dir_;
  std::vector<double> charge_;
};

// The epsilon of k rounds is the conversion of k times the round's RDP, reread from disk
// equally; the budget admits rounds while the composition stays within it.
TEST_F(DeviceLedgerTest, ChargesComposeAcrossRoundsAndTheBudgetRefuses) {
  auto ledger = DeviceLedger::Open(dir_);
  ASSERT_TRUE(ledger.ok()) << ledger.status();
  EXPECT_EQ(*ledger->Epsilon(1e-5), 0.0);
  std::vector<double> eps_after;  // epsilon after k + 1 rounds
  for (int k = 1; k <= 3; ++k) {
    std::vector<double> total(charge_.size());
    for (size_t i = 0; i < total.size(); ++i) total[i] = k * charge_[i];
    auto e = privacy::RdpToEpsilon(ledger->orders(), total, 1e-5);
    ASSERT_TRUE(e.ok());
    eps_after.push_back(e->epsilon);
  }
  EXPECT_LT(eps_after[0], eps_after[1]);
  EXPECT_LT(eps_after[1], eps_after[2]);
  EXPECT_LT(eps_after[1], 2 * eps_after[0]);  // RDP composition is sublinear in epsilon
  const double budget = (eps_after[1] + eps_after[2]) / 2;  // two rounds fit, not three
  for (uint64_t round = 1; round <= 3; ++round) {
    auto check = CheckBudget(*ledger, charge_, budget, 1e-5);
    ASSERT_TRUE(check.ok()) << check.status();
    EXPECT_NEAR(check->after, eps_after[round - 1], 1e-9 * eps_after[round - 1]);
    if (round == 3) {
      EXPECT_FALSE(check->allowed);
      EXPECT_NEAR(check->spent, eps_after[1], 1e-9 * eps_after[1]);
      EXPECT_THAT(check->reason, HasSubstr("privacy budget"));
      EXPECT_THAT(check->reason, HasSubstr("over 2 rounds"));
      break;
    }
    EXPECT_TRUE(check->allowed);
    ASSERT_TRUE(ledger->Append(Entry(round)).ok());
  }
  auto reread = DeviceLedger::Open(dir_);
  ASSERT_TRUE(reread.ok()) << reread.status();
  EXPECT_EQ(reread->rounds_charged(), 2);
  EXPECT_EQ(reread->entries()[1].round, 2u);
  EXPECT_DOUBLE_EQ(reread->entries()[1].coordinator_epsilon, 0.2);
  EXPECT_NEAR(*reread->Epsilon(1e-5), eps_after[1], 1e-9 * eps_after[1]);
  EXPECT_EQ(reread->entries()[0].rdp, charge_);  // values round-trip exactly
  struct stat st;
  ASSERT_EQ(::stat(File().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
}

// A crash during an append leaves a partial last line: it is dropped, every complete entry
// before it stays, and the next append starts on a clean line.
TEST_F(DeviceLedgerTest, ATornLastLineIsDroppedAndEarlierEntriesStay) {
  {
    auto ledger = DeviceLedger::Open(dir_);
    ASSERT_TRUE(ledger.ok());
    ASSERT_TRUE(ledger->Append(Entry(1)).ok());
    ASSERT_TRUE(ledger->Append(Entry(2)).ok());
  }
  auto whole = ReadFileToString(File());
  ASSERT_TRUE(whole.ok());
  const size_t second = whole->find('\n') + 1;
  const std::string entry3 = [&] {
    auto l = DeviceLedger::Open(dir_);
    EXPECT_TRUE(l.ok());
    EXPECT_TRUE(l->Append(Entry(3)).ok());
    auto all = ReadFileToString(File());
    return all->substr(whole->size());
  }();
  // Every cut of the third line, and a complete line whose bytes were flipped.
  for (size_t cut : {size_t{1}, size_t{40}, entry3.size() / 2, entry3.size() - 1}) {
    SCOPED_TRACE(cut);
    ASSERT_TRUE(WriteFileAtomic(File(), *whole + entry3.substr(0, cut)).ok());
    auto ledger = DeviceLedger::Open(dir_);
    ASSERT_TRUE(ledger.ok()) << ledger.status();
    EXPECT_EQ(ledger->rounds_charged(), 2);
    EXPECT_EQ(ledger->recovered_bytes(), static_cast<int64_t>(cut));
    ASSERT_TRUE(ledger->Append(Entry(4)).ok());
    auto again = DeviceLedger::Open(dir_);
    ASSERT_TRUE(again.ok()) << again.status();
    ASSERT_EQ(again->rounds_charged(), 3);
    EXPECT_EQ(again->entries()[2].round, 4u);
    EXPECT_EQ(again->recovered_bytes(), 0);
  }
  std::string flipped = *whole;
  flipped[second - 10] ^= 0x01;  // inside the first entry's JSON, checksum now wrong
  ASSERT_TRUE(WriteFileAtomic(File(), flipped).ok());
  auto damaged = DeviceLedger::Open(dir_);
  EXPECT_EQ(damaged.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(damaged.status().message(), HasSubstr("line 1"));
  EXPECT_THAT(damaged.status().message(), HasSubstr("hint:"));
}

// Two ledger objects over one folder (two processes): an append never cuts what the other
// appended since it was opened.
TEST_F(DeviceLedgerTest, AStaleLedgerAppendsAfterEntriesItHasNotSeen) {
  auto a = DeviceLedger::Open(dir_);
  auto b = DeviceLedger::Open(dir_);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(a->Append(Entry(1)).ok());
  ASSERT_TRUE(b->Append(Entry(2)).ok());
  EXPECT_EQ(b->rounds_charged(), 2);
  auto reread = DeviceLedger::Open(dir_);
  ASSERT_TRUE(reread.ok()) << reread.status();
  ASSERT_EQ(reread->rounds_charged(), 2);
  EXPECT_EQ(reread->entries()[0].round, 1u);
  EXPECT_EQ(reread->entries()[1].round, 2u);
}

TEST_F(DeviceLedgerTest, BadEntriesAreRefusedAndLeaveTheFileAlone) {
  auto ledger = DeviceLedger::Open(dir_);
  ASSERT_TRUE(ledger.ok());
  DeviceLedgerEntry e = Entry(1);
  e.rdp.pop_back();
  EXPECT_EQ(ledger->Append(e).code(), absl::StatusCode::kInvalidArgument);
  e = Entry(1);
  e.rdp[3] = -1;
  EXPECT_EQ(ledger->Append(e).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(File()));
  // An infinite charge (a mechanism outside the bound's range) is kept as infinite.
  e = Entry(1);
  e.rdp[0] = std::numeric_limits<double>::infinity();
  ASSERT_TRUE(ledger->Append(e).ok());
  auto reread = DeviceLedger::Open(dir_);
  ASSERT_TRUE(reread.ok()) << reread.status();
  EXPECT_TRUE(std::isinf(reread->entries()[0].rdp[0]));
}

}  // namespace
}  // namespace fedlora::device
