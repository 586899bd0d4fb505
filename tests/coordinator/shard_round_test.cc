// Sharded rounds over gRPC (in-process coordinator, fake devices; shard_round_testutil.h): the
// committed adapter is the one-session decode of the same inputs; a shard below its minimum
// is dropped and the round commits from the others, or aborts charged; one ledger entry either
// way. The same with aggregator processes: aggregator_shard_test.cc.
#include <set>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shard_round_testutil.h"

namespace fedlora::coordinator {
namespace {

using testing::Behaviour;
using testing::FakeResult;
using testing::GrpcRoundTest;
using testing::ShardRoundTest;

TEST_F(ShardRoundTest, ThreeShardsCommitTheOneSessionAdapter) {
  StartSharded();
  auto results = RunAll(std::vector<Behaviour>(9));
  for (const FakeResult& r : results) {
    EXPECT_TRUE(r.status.ok()) << r.status;
    EXPECT_TRUE(r.completed) << r.detail;
  }
  ExpectShardedTasks(results);
  ExpectAllNineCommittedAsOneSession(results);
}

TEST_F(ShardRoundTest, AShardBelowItsMinimumIsDroppedAndTheRestCommits) {
  StartSharded();
  auto results = RunAll(Silence({0}));
  ASSERT_TRUE(server_->rounds().WaitUntilFinished(absl::Seconds(60)));
  int completed = 0;
  for (const FakeResult& r : results) {
    completed += r.completed;
    EXPECT_EQ(r.completed, r.task.shard() != 0) << "shard " << r.task.shard() << ": " << r.detail;
  }
  ExpectShardedTasks(results);
  EXPECT_EQ(completed, 6);
  const RoundRecord round = Round(1);
  EXPECT_EQ(round.state, "committed") << round.abort_reason;
  EXPECT_EQ(round.summed, 6);
  EXPECT_EQ(Charges(), 1u);
  EXPECT_GE(server_->metrics().Value("fedlora_device_drops_total", {"shard_dropped"}), 1);
  EXPECT_EQ(CommittedAdapter(), OneSessionAdapter(results));
}

TEST_F(ShardRoundTest, TooFewSurvivorsAcrossShardsAbortsCharged) {
  StartSharded();
  auto results = RunAll(Silence({0, 1}));  // shard 2 alone: 3 < the round's 5
  // Shard 2's devices wait for the finish, so the round is over; the next one is open.
  const absl::Time until = absl::Now() + absl::Seconds(30);
  while (server_->rounds().Current().round < 2 && absl::Now() < until) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(server_->rounds().Current().round, 2u);
  for (const FakeResult& r : results) EXPECT_FALSE(r.completed) << r.task.shard();
  const RoundRecord round = Round(1);
  EXPECT_EQ(round.state, "aborted");
  EXPECT_TRUE(round.charged);
  EXPECT_FALSE(testing::HasDigit(round.abort_reason)) << round.abort_reason;
  EXPECT_EQ(Charges(), 1u);
  auto store = OpenSqliteStore(dir_);
  ASSERT_TRUE(store.ok());
  EXPECT_EQ((*store)->LatestAdapter()->version, 1u);
}


}  // namespace
}  // namespace fedlora::coordinator
