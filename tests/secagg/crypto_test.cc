#include <gtest/gtest.h>

#include "fedlora/secagg/aead.h"
#include "fedlora/secagg/bit_packing.h"
#include "fedlora/secagg/key_agreement.h"
#include "fedlora/secagg/mask_prg.h"
#include "fedlora/secagg/rng.h"

namespace fedlora::secagg {
namespace {

TEST(RngTest, DeterministicRngRepeatsPerSeedAndDiffersAcrossSeeds) {
  SeededRandom a(1), b(1), c(2);
  EXPECT_EQ(a.NextU64(), b.NextU64());
  EXPECT_NE(a.NextU64(), c.NextU64());
  for (int i = 0; i < 100; ++i) EXPECT_LT(a.Uniform(7), 7u);
  SecureRandom s;
  EXPECT_NE(s.NextU64(), s.NextU64());
}

TEST(KeyAgreementTest, BothSidesDeriveTheSameSecret) {
  SeededRandom rng(3);
  auto alice = X25519KeyPair::Generate(rng);
  auto bob = X25519KeyPair::Generate(rng);
  auto ab = alice.Agree(bob.public_key());
  auto ba = bob.Agree(alice.public_key());
  ASSERT_TRUE(ab.ok() && ba.ok());
  EXPECT_TRUE(ConstantTimeEquals(*ab, *ba));
  auto again = X25519KeyPair::FromPrivateKey(alice.private_key());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->public_key(), alice.public_key());
}

TEST(KeyAgreementTest, RejectsBadAndLowOrderPeerKeys) {
  SeededRandom rng(4);
  auto alice = X25519KeyPair::Generate(rng);
  EXPECT_EQ(alice.Agree("short").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(alice.Agree(std::string(32, '\0')).ok());  // low-order point
}

TEST(KeyAgreementTest, HkdfSeparatesContexts) {
  SeededRandom rng(5);
  const Secret32 ikm = NextSecret(rng);
  EXPECT_TRUE(ConstantTimeEquals(HkdfSha256(ikm, "s", "a"), HkdfSha256(ikm, "s", "a")));
  EXPECT_FALSE(ConstantTimeEquals(HkdfSha256(ikm, "s", "a"), HkdfSha256(ikm, "s", "b")));
  EXPECT_FALSE(ConstantTimeEquals(HkdfSha256(ikm, "s", "a"), HkdfSha256(ikm, "t", "a")));
}

TEST(AeadTest, RoundTripAndTamperDetection) {
  SeededRandom rng(6);
  const Secret32 key = NextSecret(rng);
  const std::string sealed = AeadSeal(key, "aad", "share payload", rng);
  auto opened = AeadOpen(key, "aad", sealed);
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(*opened, "share payload");
  for (size_t i = 0; i < sealed.size(); ++i) {
    std::string bad = sealed;
    bad[i] ^= 0x01;
    EXPECT_EQ(AeadOpen(key, "aad", bad).status().code(), absl::StatusCode::kDataLoss) << i;
  }
  EXPECT_EQ(AeadOpen(key, "other aad", sealed).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(AeadOpen(NextSecret(rng), "aad", sealed).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(AeadOpen(key, "aad", "short").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(MaskPrgTest, AddThenSubtractCancelsAndSeedsDiffer) {
  SeededRandom rng(7);
  const Secret32 s1 = NextSecret(rng), s2 = NextSecret(rng);
  MaskExpander prg;
  const size_t n = 10007;  // not a multiple of the chunk size
  std::vector<uint32_t> acc(n, 5);
  prg.Apply(s1, false, acc.data(), n);
  EXPECT_NE(acc[0], 5u);
  prg.Apply(s1, true, acc.data(), n);
  for (uint32_t v : acc) ASSERT_EQ(v, 5u);
  EXPECT_NE(prg.Expand(s1, 8), prg.Expand(s2, 8));
  const std::vector<uint32_t> longer = prg.Expand(s1, 9000);
  EXPECT_EQ(prg.Expand(s1, 8), std::vector<uint32_t>(longer.begin(), longer.begin() + 8));
}

class BitPackingTest : public ::testing::TestWithParam<int> {};

TEST_P(BitPackingTest, RoundTrip) {
  const int bits = GetParam();
  SeededRandom rng(bits);
  const size_t n = 1001;
  std::vector<uint32_t> v(n);
  const uint64_t mask = (uint64_t{1} << bits) - 1;
  for (auto& x : v) x = static_cast<uint32_t>(rng.NextU64() & mask);
  v[0] = static_cast<uint32_t>(mask);  // edge value
  const std::string packed = PackBits(v.data(), n, bits);
  EXPECT_EQ(packed.size(), PackedSize(n, bits));
  std::vector<uint32_t> out;
  ASSERT_TRUE(UnpackBits(packed, bits, n, &out).ok());
  EXPECT_EQ(out, v);
  EXPECT_FALSE(UnpackBits(packed + "x", bits, n, &out).ok());
}

INSTANTIATE_TEST_SUITE_P(AllWidths, BitPackingTest, ::testing::Values(1, 3, 8, 13, 16, 31, 32));

}  // namespace
}  // namespace fedlora::secagg
