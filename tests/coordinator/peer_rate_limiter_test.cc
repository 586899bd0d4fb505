#include "fedlora/coordinator/peer_rate_limiter.h"

#include "gtest/gtest.h"

namespace fedlora::coordinator {
namespace {

TEST(PeerKeyTest, AddressWithoutPortAndIpv6Prefix) {
  EXPECT_EQ(PeerKey("ipv4:10.1.2.3:5678"), "ipv4:10.1.2.3");
  EXPECT_EQ(PeerKey("ipv4:10.1.2.3:1"), PeerKey("ipv4:10.1.2.3:2"));
  EXPECT_NE(PeerKey("ipv4:10.1.2.3:1"), PeerKey("ipv4:10.1.2.4:1"));
  // One /64 is one subscriber: addresses inside it share a bucket, other prefixes do not.
  EXPECT_EQ(PeerKey("ipv6:[2001:db8:1:2::7]:443"), "ipv6:2001:db8:1:2::/64");
  EXPECT_EQ(PeerKey("ipv6:[2001:db8:1:2:aaaa::1]:443"), PeerKey("ipv6:[2001:db8:1:2::7]:9"));
  EXPECT_NE(PeerKey("ipv6:[2001:db8:1:3::7]:443"), PeerKey("ipv6:[2001:db8:1:2::7]:443"));
  EXPECT_EQ(PeerKey("ipv6:[::ffff:10.1.2.3]:443"), "ipv4:10.1.2.3");
  EXPECT_EQ(PeerKey("unix:/tmp/sock"), "unix:/tmp/sock");
}

TEST(PeerRateLimiterTest, BurstThenSteadyRateAndRefunds) {
  RateLimit limit;
  limit.burst = 3;
  limit.rate_per_second = 0.5;  // one token every 2 s
  PeerRateLimiter limiter(limit);
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.TryTake("a", t0)) << i;
  EXPECT_FALSE(limiter.TryTake("a", t0));
  EXPECT_DOUBLE_EQ(limiter.SecondsUntilToken("a", t0), 2.0);
  EXPECT_TRUE(limiter.TryTake("b", t0));  // another peer has its own bucket
  EXPECT_FALSE(limiter.TryTake("a", t0 + absl::Seconds(1.9)));
  EXPECT_TRUE(limiter.TryTake("a", t0 + absl::Seconds(2.1)));
  EXPECT_FALSE(limiter.TryTake("a", t0 + absl::Seconds(2.2)));
  // A refunded token can be taken again at once; refunds never exceed the burst.
  limiter.Refund("a", t0 + absl::Seconds(2.2));
  EXPECT_TRUE(limiter.TryTake("a", t0 + absl::Seconds(2.2)));
  for (int i = 0; i < 10; ++i) limiter.Refund("c", t0);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.TryTake("c", t0)) << i;
  EXPECT_FALSE(limiter.TryTake("c", t0));
  // A long pause refills to the burst, not beyond.
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.TryTake("a", t0 + absl::Hours(1))) << i;
  EXPECT_FALSE(limiter.TryTake("a", t0 + absl::Hours(1)));
}

TEST(PeerRateLimiterTest, MemoryIsBoundedByMaxPeers) {
  RateLimit limit;
  limit.burst = 2;
  limit.rate_per_second = 1;
  limit.max_peers = 100;
  PeerRateLimiter limiter(limit);
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  // Peers that drained their buckets, far more than max_peers of them.
  for (int i = 0; i < 1000; ++i) {
    const std::string peer = "p" + std::to_string(i);
    limiter.TryTake(peer, t0);
    limiter.TryTake(peer, t0);
    EXPECT_LE(limiter.peers(), limit.max_peers) << i;
  }
  // Buckets that refilled are the first to go, and forgetting one only restores its burst.
  EXPECT_TRUE(limiter.TryTake("new", t0 + absl::Seconds(5)));
  EXPECT_LE(limiter.peers(), limit.max_peers);
}

}  // namespace
}  // namespace fedlora::coordinator
