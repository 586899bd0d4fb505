// Selection that really is Poisson sampling, and an epsilon that holds against the coordinator
// (issue 28): a fixed window from the round's opening, one coin for every check-in in it, no
// cap by arrival order, every masked input that arrives in time summed, every round whose fate
// depends on the sample charged, no private count in what an operator reads, and a bound on
// what one device can add to the sum.
#include "fake_device_testutil.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora::coordinator {
namespace {

using testing::Behaviour;
using testing::FakeResult;
using testing::GrpcRoundTest;
using testing::HasDigit;
using ::testing::HasSubstr;
using ::testing::Not;

// Fast and slow devices, many more than the expected cohort: every sampled device whose
// masked input arrives before the phase deadline is in the sum; none is refused as "not
// needed" (the old reporting goal let one device's input displace another's).
TEST_F(GrpcRoundTest, EveryMaskedInputBeforeTheDeadlineIsSummed) {
  Start(/*goal=*/2, /*devices=*/6);
  std::vector<Behaviour> b(6);
  for (int i = 3; i < 6; ++i) b[i].masked_delay = absl::Milliseconds(1500);  // deadline 3 s
  auto results = RunAll(b);
  for (int i = 0; i < 6; ++i) {
    EXPECT_TRUE(results[i].status.ok()) << i << ": " << results[i].status;
    EXPECT_TRUE(results[i].completed) << i << ": " << results[i].detail;
    EXPECT_THAT(results[i].status.message(), Not(HasSubstr("not needed")));
  }
  ASSERT_TRUE(server_->rounds().WaitUntilFinished(absl::Seconds(30)));
  const RoundRecord r = Round(1);
  EXPECT_EQ(r.state, "committed") << r.abort_reason;
  EXPECT_EQ(r.summed, 6);  // the store's count of IncludedDevices()
  // The commit's log line names no count.
  for (const auto& line : Log()) {
    if (line.find("committed") != std::string::npos) {
      EXPECT_THAT(line, Not(HasSubstr("devices summed"))) << line;
    }
  }
}

// The window is fixed from the round's opening: devices arriving after the sample reached its
// minimum still get their coin (q = 1: all sampled), and everyone's task comes when the window
// that opened with the round ends, not a window after the minimum was reached.
TEST_F(GrpcRoundTest, CoinsForEveryCheckInOfTheFixedWindow) {
  Start(/*goal=*/2, /*devices=*/5);  // a 4 s window
  std::vector<Behaviour> b(5);
  for (int i = 0; i < 2; ++i) b[i].checkin_at = absl::Milliseconds(1500);  // the minimum
  for (int i = 2; i < 5; ++i) b[i].checkin_at = absl::Milliseconds(2500);  // after it
  auto results = RunAll(b);
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(results[i].completed) << i << ": " << results[i].status << " " << results[i].detail
                                      << " " << results[i].rejection;
    // Opened after started_ (so the task is not earlier than started_ + 4 s) and closed 4 s
    // later; a window counted from the minimum (1.5 s) would end at 5.5 s.
    EXPECT_GE(results[i].task_at, started_ + absl::Seconds(4)) << i;
    EXPECT_LT(results[i].task_at, started_ + absl::Milliseconds(5200)) << i;
  }
  ASSERT_TRUE(server_->rounds().WaitUntilFinished(absl::Seconds(30)));
  EXPECT_EQ(Round(1).state, "committed") << Round(1).abort_reason;
  EXPECT_EQ(Round(1).summed, 5);
  // Coin outcomes and tasks are not counted in the metrics (their numbers are private).
  EXPECT_EQ(server_->metrics().Value("fedlora_checkins_total", {"task"}), 0);
  EXPECT_EQ(server_->metrics().Value("fedlora_rejections_total", {"REJECTION_NOT_SELECTED"}), 0);
}

// One device in the window: below the minimum cohort (2). The round is aborted AND charged
// (whether it is released depends on the private sample size), and neither the device's
// rejection, the store's reason nor the log names a count.
TEST_F(GrpcRoundTest, AnUnderfullSampleAbortsChargedAndNamesNoCount) {
  Start(/*goal=*/4, /*devices=*/4);
  v1::CheckInRequest req;
  req.set_eligible(true);
  auto resp = clients_[0]->CheckIn(req, absl::Seconds(20));
  ASSERT_TRUE(resp.ok()) << resp.status();
  ASSERT_TRUE(resp->has_rejection());
  const std::string detail = resp->rejection().detail();
  EXPECT_THAT(detail, HasSubstr("fewer than the minimum"));
  EXPECT_FALSE(HasDigit(detail.substr(detail.find("aborted:")))) << detail;
  const RoundRecord r = Round(1);
  EXPECT_EQ(r.state, "aborted");
  EXPECT_TRUE(r.charged);
  EXPECT_GT(r.epsilon_after, 0);
  EXPECT_FALSE(HasDigit(r.abort_reason)) << r.abort_reason;
  EXPECT_EQ(Charges(), 1u);
  EXPECT_GT(server_->rounds().epsilon(), 0);
  EXPECT_EQ(server_->rounds().Current().round, 2u);
  bool logged = false;
  for (const auto& line : Log()) {
    const size_t at = line.find("aborted:");
    if (at == std::string::npos) continue;
    logged = true;
    EXPECT_FALSE(HasDigit(line.substr(at))) << line;
  }
  EXPECT_TRUE(logged);
}

// More devices sampled than max_cohort (the noise headroom and session are sized for it): the
// round is aborted, charged; a window in which nobody checked in charged nothing before it.
TEST_F(GrpcRoundTest, AnOverfullSampleAbortsCharged) {
  testing::TestCoordinatorOptions t;
  t.max_cohort = 2;
  Start(/*goal=*/2, /*devices=*/3, t);
  std::vector<Behaviour> b(3);
  for (auto& x : b) {
    x.checkin_at = absl::Seconds(6);  // in the second window (4 s to 8 s): the first was empty
    x.checkins = 1;
  }
  auto results = RunAll(b);
  for (const auto& x : results) {
    EXPECT_FALSE(x.completed);
    EXPECT_THAT(x.rejection, HasSubstr("max_cohort"));
  }
  const RoundRecord r = Round(1);
  EXPECT_EQ(r.state, "aborted");
  EXPECT_TRUE(r.charged);
  EXPECT_THAT(r.abort_reason, HasSubstr("max_cohort"));
  EXPECT_FALSE(HasDigit(r.abort_reason)) << r.abort_reason;
  EXPECT_EQ(Charges(), 1u);  // the empty first window charged nothing
}

// A device adds a large vector to its masked input (any vector mod 2^b passes secure
// aggregation): the decoded sum exceeds what the summed devices' clip and the noise allow, so
// the round is aborted and charged with a reason saying so. The same settings with honest
// devices commit.
TEST_F(GrpcRoundTest, ALargeMaliciousInputAbortsTheRoundCharged) {
  Start(/*goal=*/3, /*devices=*/3);
  std::vector<Behaviour> b(3);
  b[2].malicious = true;
  auto results = RunAll(b);
  for (const auto& x : results) EXPECT_FALSE(x.completed) << x.detail;
  const RoundRecord r = Round(1);
  EXPECT_EQ(r.state, "aborted");
  EXPECT_TRUE(r.charged);
  EXPECT_THAT(r.abort_reason, HasSubstr("L2 norm exceeds"));
  EXPECT_THAT(r.abort_reason, HasSubstr("outside its clip"));
  EXPECT_THAT(results[0].detail, HasSubstr("L2 norm exceeds"));
  EXPECT_EQ(Charges(), 1u);
  EXPECT_GT(server_->rounds().epsilon(), 0);
}

TEST_F(GrpcRoundTest, TheSameSettingsWithHonestDevicesCommit) {
  Start(/*goal=*/3, /*devices=*/3);
  auto results = RunAll(std::vector<Behaviour>(3));
  for (const auto& x : results) EXPECT_TRUE(x.completed) << x.status << " " << x.detail;
  ASSERT_TRUE(server_->rounds().WaitUntilFinished(absl::Seconds(30)));
  EXPECT_EQ(Round(1).state, "committed") << Round(1).abort_reason;
  EXPECT_EQ(Charges(), 1u);
}

}  // namespace
}  // namespace fedlora::coordinator
