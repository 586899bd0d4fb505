#include "fedlora/common/net_address.h"

#include "gtest/gtest.h"

namespace fedlora {
namespace {

TEST(NetAddressTest, HostOfAddressStripsPortAndBrackets) {
  EXPECT_EQ(HostOfAddress("127.0.0.1:50051"), "127.0.0.1");
  EXPECT_EQ(HostOfAddress("[::1]:50051"), "::1");
  EXPECT_EQ(HostOfAddress("::1"), "::1");
  EXPECT_EQ(HostOfAddress("localhost"), "localhost");
  EXPECT_EQ(HostOfAddress("coordinator.example:443"), "coordinator.example");
}

TEST(NetAddressTest, NumericLoopbackAddressesAreLoopback) {
  EXPECT_TRUE(IsLoopbackAddress("127.0.0.1:50051"));
  EXPECT_TRUE(IsLoopbackAddress("127.255.3.4:1"));
  EXPECT_TRUE(IsLoopbackAddress("[::1]:50051"));
  EXPECT_TRUE(IsLoopbackAddress("[::ffff:127.0.0.1]:50051"));
  EXPECT_TRUE(IsLoopbackAddress("ipv4:127.0.0.1:50051"));
  EXPECT_TRUE(IsLoopbackAddress("unix:/tmp/coordinator.sock"));
}

TEST(NetAddressTest, LocalhostIsResolvedToLoopback) {
  EXPECT_TRUE(IsLoopbackAddress("localhost:50051"));
  EXPECT_TRUE(IsLoopbackAddress("dns:///localhost:50051"));
}

TEST(NetAddressTest, OtherAddressesAreNot) {
  EXPECT_FALSE(IsLoopbackAddress("0.0.0.0:50051"));
  EXPECT_FALSE(IsLoopbackAddress("[::]:50051"));
  EXPECT_FALSE(IsLoopbackAddress("10.0.0.1:50051"));
  EXPECT_FALSE(IsLoopbackAddress("128.0.0.1:50051"));
  EXPECT_FALSE(IsLoopbackAddress("[::ffff:10.0.0.1]:50051"));
  EXPECT_FALSE(IsLoopbackAddress(":50051"));
}

// A name is judged by what it resolves to, not by how it is spelt: these look like loopback
// but are DNS names (".invalid" never resolves, RFC 6761), so plaintext must be refused.
TEST(NetAddressTest, NamesThatOnlyLookLikeLoopbackAreNot) {
  EXPECT_FALSE(IsLoopbackAddress("127.evil.invalid:50051"));
  EXPECT_FALSE(IsLoopbackAddress("127.0.0.1.evil.invalid:50051"));
  EXPECT_FALSE(IsLoopbackAddress("127.:50051"));
  EXPECT_FALSE(IsLoopbackAddress("localhost.evil.invalid:50051"));
}

}  // namespace
}  // namespace fedlora
