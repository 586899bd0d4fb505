#include "fedlora/coordinator/replay_guard.h"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora::coordinator {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kStart = 1'700'000'000'000;
constexpr int64_t kWindow = 120'000;

std::string Nonce(uint64_t i) {
  std::string n(16, '\0');
  for (int b = 0; b < 8; ++b) n[b] = static_cast<char>((i >> (8 * b)) & 0xff);
  n[15] = '\x5a';
  return n;
}

TEST(ReplayGuardTest, AcceptsFreshCallsAndRefusesReplay) {
  ReplayGuard guard(kStart);
  EXPECT_TRUE(guard.Check("dev-1", kStart + 10, Nonce(1), kStart + 20).ok());
  absl::Status replay = guard.Check("dev-1", kStart + 10, Nonce(1), kStart + 30);
  EXPECT_EQ(replay.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(replay.message(), HasSubstr("replayed call"));
  // The same nonce under a different timestamp is still a replay.
  EXPECT_EQ(guard.Check("dev-1", kStart + 11, Nonce(1), kStart + 30).code(),
            absl::StatusCode::kUnauthenticated);
  // Nonces are per device.
  EXPECT_TRUE(guard.Check("dev-2", kStart + 10, Nonce(1), kStart + 30).ok());
  EXPECT_TRUE(guard.Check("dev-1", kStart + 10, Nonce(2), kStart + 30).ok());
}

TEST(ReplayGuardTest, WindowBoundsBothWays) {
  ReplayGuard guard(kStart);
  const int64_t now = kStart + 10 * kWindow;
  EXPECT_TRUE(guard.Check("d", now - kWindow, Nonce(1), now).ok());
  EXPECT_TRUE(guard.Check("d", now + kWindow, Nonce(2), now).ok());
  absl::Status old = guard.Check("d", now - kWindow - 1, Nonce(3), now);
  EXPECT_EQ(old.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(old.message(), HasSubstr("clock skew"));
  EXPECT_THAT(old.message(), HasSubstr("check the device clock"));
  absl::Status future = guard.Check("d", now + kWindow + 1, Nonce(4), now);
  EXPECT_EQ(future.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(future.message(), HasSubstr("clock skew"));
}

TEST(ReplayGuardTest, RefusesCallsSignedBeforeStart) {
  ReplayGuard guard(kStart);
  // Within the skew window, but signed before this process started: a restarted coordinator
  // does not know the nonces its predecessor accepted, so it must refuse.
  // UNAVAILABLE: refused, and an honest device whose call was in flight across a restart or
  // a failover retries with a fresh signature (it gives up on UNAUTHENTICATED).
  absl::Status s = guard.Check("d", kStart - 1, Nonce(1), kStart + 5);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(s.message(), HasSubstr("before this coordinator started"));
  EXPECT_TRUE(guard.Check("d", kStart, Nonce(1), kStart + 5).ok());
}

TEST(ReplayGuardTest, RestartOpensNoReplayWindow) {
  ReplayGuard before(kStart);
  ASSERT_TRUE(before.Check("d", kStart + 1000, Nonce(7), kStart + 1000).ok());
  // The process restarts 5 s later and a captured call is resent.
  ReplayGuard after(kStart + 6000);
  EXPECT_FALSE(after.Check("d", kStart + 1000, Nonce(7), kStart + 6001).ok());
}

TEST(ReplayGuardTest, BadNonceAndDevice) {
  ReplayGuard guard(kStart);
  EXPECT_EQ(guard.Check("d", kStart, std::string(15, 'a'), kStart).code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(guard.Check("d", kStart, std::string(17, 'a'), kStart).code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(guard.Check("d", kStart, "", kStart).code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(guard.Check("", kStart, Nonce(1), kStart).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ReplayGuardTest, PrunesEntriesOlderThanWindow) {
  ReplayGuard guard(kStart);
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(guard.Check("dev-" + std::to_string(i % 5), kStart + i, Nonce(i), kStart + i).ok());
  }
  EXPECT_EQ(guard.RememberedNonces(kStart + 100), 50u);
  // Entries with call_ms in [kStart, kStart + 24] leave the window at kStart + kWindow + 25.
  EXPECT_EQ(guard.RememberedNonces(kStart + kWindow + 25), 25u);
  EXPECT_EQ(guard.RememberedNonces(kStart + kWindow + 50), 0u);
  // A pruned nonce would be stale anyway: its reuse is refused as clock skew, not accepted.
  absl::Status s = guard.Check("dev-0", kStart, Nonce(0), kStart + kWindow + 50);
  EXPECT_THAT(s.message(), HasSubstr("clock skew"));
}

TEST(ReplayGuardTest, PerDeviceCap) {
  ReplayGuard guard(kStart, kWindow, /*max_nonces_per_device=*/100);
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(guard.Check("busy", kStart + i, Nonce(i), kStart + 100).ok()) << i;
  }
  absl::Status s = guard.Check("busy", kStart + 100, Nonce(100), kStart + 100);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(), HasSubstr("busy"));
  // Other devices are not affected.
  EXPECT_TRUE(guard.Check("quiet", kStart + 100, Nonce(100), kStart + 100).ok());
  // Once the oldest calls leave the window, the device may call again.
  EXPECT_TRUE(guard.Check("busy", kStart + kWindow, Nonce(100), kStart + kWindow + 10).ok());
}

TEST(ReplayGuardTest, ConcurrentChecksAcceptEachNonceOnce) {
  ReplayGuard guard(kStart);
  std::atomic<int> accepted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) {
        if (guard.Check("dev", kStart + i, Nonce(i), kStart + 500).ok()) ++accepted;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(accepted.load(), 500);
}

}  // namespace
}  // namespace fedlora::coordinator
