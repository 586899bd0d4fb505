// Whole rounds over gRPC (in-process coordinator, devices as threads without a model): the
// devices privatize a synthetic delta with the task's parameters and speak the
// secure-aggregation client states; some misbehave or drop out, and the round still commits
// from the rest.
#include "fake_device_testutil.h"
#include "fedlora/common/random.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora::coordinator {
namespace {

using testing::Behaviour;
using testing::FakeResult;
using testing::GrpcRoundTest;

TEST_F(GrpcRoundTest, WrongLengthAndDisconnectsAreDroppedAndTheRoundCommits) {
  // Every input that arrives before the deadline is judged: device 4's malformed one is
  // refused as malformed, never as late.
  Start(/*goal=*/6, /*devices=*/7);
  auto results = RunAll({{}, {}, {}, {}, {-1, true}, {1, false}, {3, false}});
  for (int i : {0, 1, 2, 3}) {
    EXPECT_TRUE(results[i].status.ok()) << i << ": " << results[i].status;
    EXPECT_TRUE(results[i].completed) << i << ": " << results[i].detail;
  }
  EXPECT_EQ(results[4].status.code(), absl::StatusCode::kInvalidArgument) << results[4].status;
  ASSERT_TRUE(server_->rounds().WaitUntilFinished(absl::Seconds(30)));
  auto store = OpenSqliteStore(dir_);
  ASSERT_TRUE(store.ok());
  auto rounds = (*store)->ListRounds();
  ASSERT_TRUE(rounds.ok());
  ASSERT_EQ(rounds->size(), 1u);
  EXPECT_EQ((*rounds)[0].state, "committed") << (*rounds)[0].abort_reason;
  // 0-3 and 6 (which sent its masked input, then vanished) are in the sum.
  EXPECT_EQ((*rounds)[0].summed, 5);
  auto latest = (*store)->LatestAdapter();
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(latest->version, 2u);
  EXPECT_GE(server_->metrics().Value("fedlora_device_drops_total", {"wrong_vector_length"}), 1);
}

TEST_F(GrpcRoundTest, ThirtyPercentDropAtRandomPhases) {
  Start(/*goal=*/10, /*devices=*/10);
  SeededRandom dice(uint64_t{7});
  std::vector<Behaviour> b(10);
  std::vector<uint32_t> order(10);
  for (uint32_t i = 0; i < 10; ++i) order[i] = i;
  dice.Shuffle(order);
  for (int k = 0; k < 3; ++k) b[order[k]].stop_before = static_cast<int>(dice.Uniform(4));
  auto results = RunAll(b);
  int completed = 0;
  for (const auto& r : results) completed += r.completed;
  ASSERT_TRUE(server_->rounds().WaitUntilFinished(absl::Seconds(60)));
  auto store = OpenSqliteStore(dir_);
  ASSERT_TRUE(store.ok());
  auto rounds = (*store)->ListRounds();
  ASSERT_TRUE(rounds.ok());
  ASSERT_EQ(rounds->size(), 1u);
  EXPECT_EQ((*rounds)[0].state, "committed") << (*rounds)[0].abort_reason;
  EXPECT_GE(completed, 7);
  EXPECT_GE((*rounds)[0].summed, 7);
}

}  // namespace
}  // namespace fedlora::coordinator
