// DType table and half / bfloat16 conversions: known bit patterns, rounding, exhaustive checks.
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "fedlora/io/safetensors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora::io {
namespace {

uint32_t Bits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  return x;
}

float FromBits(uint32_t x) {
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

TEST(DTypeTest, NamesParseBackAndSizesMatchFormat) {
  const DType all[] = {DType::kBool, DType::kU8,   DType::kI8,  DType::kI16, DType::kU16,
                       DType::kF16,  DType::kBF16, DType::kI32, DType::kU32, DType::kF32,
                       DType::kF64,  DType::kI64,  DType::kU64};
  for (DType d : all) {
    auto parsed = ParseDType(DTypeName(d));
    ASSERT_TRUE(parsed.ok()) << DTypeName(d);
    EXPECT_EQ(*parsed, d);
  }
  EXPECT_EQ(DTypeSize(DType::kBool), 1u);
  EXPECT_EQ(DTypeSize(DType::kBF16), 2u);
  EXPECT_EQ(DTypeSize(DType::kF32), 4u);
  EXPECT_EQ(DTypeSize(DType::kI64), 8u);
  EXPECT_STREQ(DTypeName(DType::kBF16), "BF16");
}

TEST(DTypeTest, UnknownDTypeListsValidOnes) {
  auto parsed = ParseDType("F33");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(parsed.status().message()),
              testing::AllOf(testing::HasSubstr("'F33'"), testing::HasSubstr("BF16"),
                             testing::HasSubstr("F32"), testing::HasSubstr("U64")));
}

TEST(HalfTest, KnownBitPatternsToFloat) {
  EXPECT_EQ(HalfToFloat(0x3C00), 1.0f);
  EXPECT_EQ(HalfToFloat(0xC000), -2.0f);
  EXPECT_EQ(HalfToFloat(0x7BFF), 65504.0f);
  EXPECT_EQ(HalfToFloat(0x0001), std::ldexp(1.0f, -24));     // smallest subnormal
  EXPECT_EQ(HalfToFloat(0x03FF), std::ldexp(1023.0f, -24));  // largest subnormal
  EXPECT_EQ(HalfToFloat(0x0400), std::ldexp(1.0f, -14));     // smallest normal
  EXPECT_EQ(HalfToFloat(0x7C00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(HalfToFloat(0xFC00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(HalfToFloat(0x7E00)));
  EXPECT_TRUE(std::isnan(HalfToFloat(0x7C01)));       // signalling-NaN pattern stays NaN
  EXPECT_EQ(Bits(HalfToFloat(0x8000)), 0x80000000u);  // -0
}

TEST(HalfTest, KnownFloatsToBits) {
  EXPECT_EQ(FloatToHalf(1.0f), 0x3C00);
  EXPECT_EQ(FloatToHalf(-2.0f), 0xC000);
  EXPECT_EQ(FloatToHalf(65504.0f), 0x7BFF);
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(FloatToHalf(std::numeric_limits<float>::infinity()), 0x7C00);
  EXPECT_EQ(FloatToHalf(-std::numeric_limits<float>::infinity()), 0xFC00);
  EXPECT_EQ(FloatToHalf(-0.0f), 0x8000);
  uint16_t nan = FloatToHalf(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan & 0x7C00, 0x7C00);
  EXPECT_NE(nan & 0x03FF, 0);
  // NaN whose payload lives only in the low bits must not turn into inf.
  EXPECT_TRUE(std::isnan(HalfToFloat(FloatToHalf(FromBits(0x7F800001)))));
}

TEST(HalfTest, RoundsToNearestEven) {
  const float ulp1 = std::ldexp(1.0f, -10);             // half ulp spacing at 1.0
  EXPECT_EQ(FloatToHalf(1.0f + ulp1 / 2), 0x3C00);      // tie -> even (down)
  EXPECT_EQ(FloatToHalf(1.0f + 3 * ulp1 / 2), 0x3C02);  // tie -> even (up)
  EXPECT_EQ(FloatToHalf(std::nextafter(1.0f + ulp1 / 2, 2.0f)), 0x3C01);
  EXPECT_EQ(FloatToHalf(65519.0f), 0x7BFF);
  EXPECT_EQ(FloatToHalf(65520.0f), 0x7C00);  // tie between 65504 and 65536 -> inf
  EXPECT_EQ(FloatToHalf(1e10f), 0x7C00);
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -25)), 0x0000);  // tie with 0 -> 0
  EXPECT_EQ(FloatToHalf(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
  EXPECT_EQ(FloatToHalf(std::ldexp(3.0f, -25)), 0x0002);     // tie 1 vs 2 -> 2
  EXPECT_EQ(FloatToHalf(std::ldexp(1023.5f, -24)), 0x0400);  // subnormal rounds up to normal
  EXPECT_EQ(FloatToHalf(1e-10f), 0x0000);
}

TEST(HalfTest, EveryHalfRoundTripsThroughFloat) {
  for (uint32_t h = 0; h <= 0xFFFF; ++h) {
    float f = HalfToFloat(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(HalfToFloat(FloatToHalf(f)))) << std::hex << h;
    } else {
      ASSERT_EQ(FloatToHalf(f), h) << std::hex << h;
    }
  }
}

#ifdef __FLT16_MAX__
// The compiler's _Float16 conversion is an independent round-to-nearest-even reference.
TEST(HalfTest, MatchesCompilerFloat16OnFloatSweep) {
  for (uint64_t x = 0; x <= 0xFFFFFFFFull; x += 4093) {
    float f = FromBits(static_cast<uint32_t>(x));
    if (std::isnan(f)) continue;
    _Float16 ref = static_cast<_Float16>(f);
    uint16_t ref_bits;
    std::memcpy(&ref_bits, &ref, 2);
    ASSERT_EQ(FloatToHalf(f), ref_bits) << std::hex << x;
    ASSERT_EQ(Bits(HalfToFloat(ref_bits)), Bits(static_cast<float>(ref))) << std::hex << x;
  }
}
#endif

TEST(BFloat16Test, KnownBitPatterns) {
  EXPECT_EQ(BFloat16ToFloat(0x3F80), 1.0f);
  EXPECT_EQ(BFloat16ToFloat(0xC000), -2.0f);
  EXPECT_EQ(BFloat16ToFloat(0x0001), std::ldexp(1.0f, -133));  // smallest subnormal
  EXPECT_EQ(BFloat16ToFloat(0x7F80), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(BFloat16ToFloat(0x7FC0)));
  EXPECT_EQ(FloatToBFloat16(1.0f), 0x3F80);
  EXPECT_EQ(FloatToBFloat16(-2.0f), 0xC000);
  EXPECT_EQ(FloatToBFloat16(65504.0f), 0x4780);  // 65504 is not representable: rounds to 65536
  EXPECT_EQ(FloatToBFloat16(std::ldexp(1.0f, -133)), 0x0001);
  EXPECT_EQ(FloatToBFloat16(-std::numeric_limits<float>::infinity()), 0xFF80);
  EXPECT_EQ(FloatToBFloat16(std::numeric_limits<float>::max()), 0x7F80);  // rounds to inf
  uint16_t nan = FloatToBFloat16(FromBits(0x7F800001));  // payload only in dropped bits
  EXPECT_TRUE(std::isnan(BFloat16ToFloat(nan)));
}

TEST(BFloat16Test, RoundsToNearestEvenAgainstReference) {
  // Reference: pick the closer of the two truncation neighbours in double, ties to even.
  for (uint64_t x = 0; x <= 0xFFFFFFFFull; x += 4093) {
    float f = FromBits(static_cast<uint32_t>(x));
    if (std::isnan(f) || std::isinf(f)) continue;
    uint32_t lo = static_cast<uint32_t>(x) & 0xFFFF0000u;
    uint32_t hi = lo + 0x10000u;
    double dlo = std::fabs(static_cast<double>(f) - FromBits(lo));
    double dhi = std::fabs(static_cast<double>(FromBits(hi)) - f);
    if (std::isinf(FromBits(hi))) dhi = std::fabs(std::ldexp(1.0, 128) - std::fabs(f));
    uint32_t want = (dlo < dhi || (dlo == dhi && ((lo >> 16) & 1) == 0)) ? lo : hi;
    ASSERT_EQ(FloatToBFloat16(f), want >> 16) << std::hex << x;
  }
}

TEST(ConvertToF32Test, ConvertsUnalignedHalfAndBFloat16) {
  // Start at an odd address to show no alignment is assumed.
  std::vector<uint8_t> buf = {0xAA, 0x00, 0x3C, 0x00, 0xC0, 0x00, 0x7C};
  float out[3];
  ASSERT_TRUE(ConvertToF32(DType::kF16, buf.data() + 1, 3, out).ok());
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], -2.0f);
  EXPECT_EQ(out[2], std::numeric_limits<float>::infinity());
  std::vector<uint8_t> bf = {0xAA, 0x80, 0x3F, 0x00, 0xC0};
  ASSERT_TRUE(ConvertToF32(DType::kBF16, bf.data() + 1, 2, out).ok());
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], -2.0f);
  std::vector<uint8_t> f32(9);
  float v = 3.25f;
  std::memcpy(f32.data() + 1, &v, 4);
  ASSERT_TRUE(ConvertToF32(DType::kF32, f32.data() + 1, 1, out).ok());
  EXPECT_EQ(out[0], 3.25f);
}

TEST(ConvertToF32Test, RejectsIntegerDTypes) {
  uint8_t buf[4] = {};
  float out[1];
  absl::Status s = ConvertToF32(DType::kI32, buf, 1, out);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), testing::HasSubstr("I32"));
}

}  // namespace
}  // namespace fedlora::io
