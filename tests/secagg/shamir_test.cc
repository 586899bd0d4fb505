#include "fedlora/secagg/shamir.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "fedlora/secagg/prime_field.h"
#include "fedlora/secagg/rng.h"

namespace fedlora::secagg {
namespace {

using field::kPrime;

TEST(PrimeFieldTest, ArithmeticAtTheEdgeOfTheField) {
  const uint64_t m1 = kPrime - 1;  // == -1
  EXPECT_EQ(field::Mul(m1, m1), 1u);
  EXPECT_EQ(field::Add(m1, m1), kPrime - 2);
  EXPECT_EQ(field::Add(m1, 1), 0u);
  EXPECT_EQ(field::Sub(0, 1), m1);
  EXPECT_EQ(field::Sub(1, m1), 2u);
  EXPECT_EQ(field::Reduce(UINT64_MAX), (UINT64_MAX % kPrime));
  EXPECT_EQ(field::Reduce(kPrime), 0u);
  // (2^60)^2 = 2^120 = 2^(61*1 + 59) -> 2^59 mod p since 2^61 == 1.
  EXPECT_EQ(field::Mul(uint64_t{1} << 60, uint64_t{1} << 60), uint64_t{1} << 59);
  SeededRandom rng(7);
  for (int i = 0; i < 1000; ++i) {
    const uint64_t a = field::Reduce(rng.NextU64());
    const uint64_t b = field::Reduce(rng.NextU64());
    const unsigned __int128 exact = static_cast<unsigned __int128>(a) * b % kPrime;
    ASSERT_EQ(field::Mul(a, b), static_cast<uint64_t>(exact));
    if (a != 0) {
      ASSERT_EQ(field::Mul(a, field::Inv(a)), 1u);
    }
  }
  EXPECT_EQ(field::Mul(m1, field::Inv(m1)), 1u);
}

Secret32 SecretOf(uint8_t fill) {
  uint8_t b[32];
  std::fill(b, b + 32, fill);
  return Secret32(b);
}

TEST(ShamirTest, AnyThresholdSubsetReconstructs) {
  SeededRandom rng(1);
  const Secret32 secret = NextSecret(rng);
  std::vector<uint64_t> xs;
  for (uint64_t i = 1; i <= 10; ++i) xs.push_back(i * 3);
  auto shares = ShamirSplit(secret, 4, xs, rng);
  ASSERT_TRUE(shares.ok()) << shares.status();
  for (int start = 0; start + 4 <= 10; start += 2) {
    std::vector<ShamirShare> subset(shares->begin() + start, shares->begin() + start + 4);
    auto rebuilt = ShamirReconstruct(subset, 4);
    ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
    EXPECT_TRUE(ConstantTimeEquals(*rebuilt, secret));
  }
}

TEST(ShamirTest, AllOnesSecretAndLargestEvaluationPoints) {
  // Secret bytes 0xff make every chunk its maximum (2^56 - 1, 2^32 - 1); evaluation points
  // next to p exercise the reduction.
  SeededRandom rng(2);
  const Secret32 secret = SecretOf(0xff);
  std::vector<uint64_t> xs = {kPrime - 1, kPrime - 2, kPrime - 3, 1, 2};
  auto shares = ShamirSplit(secret, 5, xs, rng);
  ASSERT_TRUE(shares.ok());
  auto rebuilt = ShamirReconstruct(*shares, 5);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  EXPECT_TRUE(ConstantTimeEquals(*rebuilt, secret));
}

TEST(ShamirTest, FewerThanThresholdFailsAndWrongSubsetGivesGarbage) {
  SeededRandom rng(3);
  const Secret32 secret = SecretOf(0x11);
  auto shares = ShamirSplit(secret, 3, {1, 2, 3, 4}, rng);
  ASSERT_TRUE(shares.ok());
  std::vector<ShamirShare> two(shares->begin(), shares->begin() + 2);
  EXPECT_EQ(ShamirReconstruct(two, 3).status().code(), absl::StatusCode::kFailedPrecondition);
  // Interpolating 2 shares of a degree-2 polynomial does not give the secret.
  auto wrong = ShamirReconstruct(two, 2);
  EXPECT_FALSE(wrong.ok() && ConstantTimeEquals(*wrong, secret));
}

TEST(ShamirTest, ForgedShareIsDetectedOrChangesTheSecret) {
  SeededRandom rng(4);
  const Secret32 secret = SecretOf(0x42);
  auto shares = ShamirSplit(secret, 3, {1, 2, 3}, rng);
  ASSERT_TRUE(shares.ok());
  (*shares)[1].y[0] = field::Add((*shares)[1].y[0], 12345);
  auto rebuilt = ShamirReconstruct(*shares, 3);
  EXPECT_FALSE(rebuilt.ok() && ConstantTimeEquals(*rebuilt, secret));
}

TEST(ShamirTest, SerializationRoundTripAndValidation) {
  SeededRandom rng(5);
  auto shares = ShamirSplit(NextSecret(rng), 2, {9, 10}, rng);
  ASSERT_TRUE(shares.ok());
  const std::string bytes = SerializeShare((*shares)[0]);
  EXPECT_EQ(bytes.size(), kShamirShareBytes);
  auto parsed = ParseShare(9, bytes);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->y, (*shares)[0].y);
  EXPECT_EQ(ParseShare(9, bytes.substr(1)).status().code(), absl::StatusCode::kInvalidArgument);
  std::string too_big(kShamirShareBytes, '\xff');
  EXPECT_EQ(ParseShare(9, too_big).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ShamirTest, RejectsBadArguments) {
  SeededRandom rng(6);
  const Secret32 s = SecretOf(1);
  EXPECT_FALSE(ShamirSplit(s, 0, {1, 2}, rng).ok());
  EXPECT_FALSE(ShamirSplit(s, 3, {1, 2}, rng).ok());
  EXPECT_FALSE(ShamirSplit(s, 2, {1, 1}, rng).ok());
  EXPECT_FALSE(ShamirSplit(s, 2, {0, 1}, rng).ok());
  EXPECT_FALSE(ShamirSplit(s, 2, {kPrime, 1}, rng).ok());
}

}  // namespace
}  // namespace fedlora::secagg
