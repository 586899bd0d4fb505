// AggregatorRounds (an aggregator process's round side) on a fake clock, without the network:
// what it refuses, a shard whose devices never speak is dropped at its deadline, and stopping
// ends the shards still running; each shard's `done` exactly once. (Whole rounds through
// aggregator processes: AggregatorShardTest in aggregator_shard_test.cc.)
#include "fedlora/coordinator/aggregator_rounds.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shard_spec_testutil.h"

namespace fedlora::coordinator {
namespace {

ShardSpec ThreeDevices(uint64_t round, uint32_t shard) {
  return ThreeDeviceShard(round, shard, absl::Seconds(10), absl::Seconds(5));
}

class AggregatorRoundsTest : public ::testing::Test {
 protected:
  absl::Time now_ = absl::FromUnixSeconds(1000);
  AggregatorRounds rounds_{[this] { return now_; }};
};

TEST_F(AggregatorRoundsTest, CheckInsAndDevicesOfNoShardHereAreRefused) {
  absl::Status checkin;
  rounds_.CheckIn(SignedCall{}, v1::CheckInRequest(),
                  [&](absl::Status s, v1::CheckInResponse) { checkin = s; });
  EXPECT_EQ(checkin.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(checkin.message()), ::testing::HasSubstr("aggregator"));
  SignedCall call;
  call.device_id = "a";
  v1::SecAggUpload upload;
  upload.set_round(7);
  absl::Status secagg;
  rounds_.SecAgg(call, secagg::Phase::kAdvertiseKeys, upload, "d",
                 [&](absl::Status s, v1::SecAggDownload) { secagg = s; });
  EXPECT_EQ(secagg.code(), absl::StatusCode::kUnavailable);  // its RunShard may be on its way
}

TEST_F(AggregatorRoundsTest, ASecondShardOfTheSameKeyOrAMismatchedOneIsRefused) {
  int calls = 0;
  ASSERT_TRUE(rounds_.Host(ThreeDevices(7, 0), [&](absl::StatusOr<ShardSum>) { ++calls; }).ok());
  EXPECT_EQ(rounds_.Host(ThreeDevices(7, 0), [&](absl::StatusOr<ShardSum>) { ++calls; }).code(),
            absl::StatusCode::kInvalidArgument);
  ShardSpec wrong = ThreeDevices(7, 1);
  wrong.devices.pop_back();
  EXPECT_EQ(rounds_.Host(wrong, [&](absl::StatusOr<ShardSum>) { ++calls; }).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(rounds_.running(), 1);
  EXPECT_EQ(calls, 0);
  rounds_.Stop();  // the one running ends (before `calls` goes out of scope)
  EXPECT_EQ(calls, 1);
}

TEST_F(AggregatorRoundsTest, AShardWhoseDevicesNeverSpeakIsDroppedAtItsDeadline) {
  int calls = 0;
  absl::StatusOr<ShardSum> result = ShardSum{};
  ASSERT_TRUE(rounds_
                  .Host(ThreeDevices(7, 0),
                        [&](absl::StatusOr<ShardSum> r) {
                          ++calls;
                          result = std::move(r);
                        })
                  .ok());
  rounds_.Tick(now_ + absl::Seconds(9));  // before the advertise deadline: still waiting
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(rounds_.running(), 1);
  rounds_.Tick(now_ + absl::Seconds(10));
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(rounds_.running(), 0);
  rounds_.Tick(now_ + absl::Seconds(60));
  EXPECT_EQ(calls, 1);
}

TEST_F(AggregatorRoundsTest, StoppingEndsTheShardsStillRunning) {
  int calls = 0;
  absl::Status why;
  ASSERT_TRUE(rounds_
                  .Host(ThreeDevices(7, 0),
                        [&](absl::StatusOr<ShardSum> r) {
                          ++calls;
                          why = r.status();
                        })
                  .ok());
  rounds_.Stop();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(why.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(rounds_.Host(ThreeDevices(8, 0), [](absl::StatusOr<ShardSum>) {}).code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace fedlora::coordinator
