// Element types of safetensors files and float16 / bfloat16 <-> float32 conversion.
#include <cstring>

#include "absl/strings/str_cat.h"
#include "fedlora/io/safetensors.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "fedlora::io reads little-endian tensor data in place; add byte swapping first");

namespace fedlora::io {
namespace {

struct DTypeInfo {
  DType dtype;
  const char* name;
  size_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::kBool, "BOOL", 1}, {DType::kU8, "U8", 1},   {DType::kI8, "I8", 1},
    {DType::kI16, "I16", 2},   {DType::kU16, "U16", 2}, {DType::kF16, "F16", 2},
    {DType::kBF16, "BF16", 2}, {DType::kI32, "I32", 4}, {DType::kU32, "U32", 4},
    {DType::kF32, "F32", 4},   {DType::kF64, "F64", 8}, {DType::kI64, "I64", 8},
    {DType::kU64, "U64", 8},
};

const DTypeInfo* Info(DType dtype) {
  for (const DTypeInfo& info : kDTypes) {
    if (info.dtype == dtype) return &info;
  }
  return nullptr;
}

uint32_t FloatBits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof(x));
  return x;
}

float BitsToFloat(uint32_t x) {
  float f;
  std::memcpy(&f, &x, sizeof(f));
  return f;
}

uint16_t LoadU16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (static_cast<uint16_t>(p[1]) << 8));
}

}  // namespace

const char* DTypeName(DType dtype) {
  const DTypeInfo* info = Info(dtype);
  return info != nullptr ? info->name : "INVALID";
}

absl::StatusOr<DType> ParseDType(const std::string& name) {
  std::string valid;
  for (const DTypeInfo& info : kDTypes) {
    if (name == info.name) return info.dtype;
    absl::StrAppend(&valid, valid.empty() ? "" : ", ", info.name);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown dtype '", name, "' (valid: ", valid, ")"));
}

size_t DTypeSize(DType dtype) {
  const DTypeInfo* info = Info(dtype);
  return info != nullptr ? info->size : 0;
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

float HalfToFloat(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1F;
  uint32_t mant = h & 0x3FF;
  if (exp == 0x1F) return BitsToFloat(sign | 0x7F800000 | (mant << 13));  // inf / NaN
  if (exp == 0) {
    if (mant == 0) return BitsToFloat(sign);  // +-0
    // Subnormal: normalise so the leading 1 becomes the implicit bit.
    uint32_t e = 113;  // 127 - 15 + 1
    while ((mant & 0x400) == 0) {
      mant <<= 1;
      --e;
    }
    return BitsToFloat(sign | (e << 23) | ((mant & 0x3FF) << 13));
  }
  return BitsToFloat(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t FloatToHalf(float f) {
  uint32_t x = FloatBits(f);
  uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  uint32_t ax = x & 0x7FFFFFFF;
  if (ax > 0x7F800000) {  // NaN: keep the top payload bits, force a quiet NaN.
    return static_cast<uint16_t>(sign | 0x7E00 | ((ax >> 13) & 0x3FF));
  }
  if (ax >= 0x477FF000) return sign | 0x7C00;  // >= 65520 rounds to inf (ties to even)
  if (ax >= 0x38800000) {                      // normal half (>= 2^-14)
    uint32_t h = ((ax >> 23) - 112) << 10 | ((ax & 0x7FFFFF) >> 13);
    uint32_t rem = ax & 0x1FFF;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) ++h;  // carry may bump the exponent
    return static_cast<uint16_t>(sign | h);
  }
  if (ax < 0x33000000) return sign;  // below half the smallest subnormal: +-0
  // Subnormal half: value = mant * 2^(exp - 150), unit 2^-24.
  uint32_t exp = ax >> 23;
  uint32_t mant = (ax & 0x7FFFFF) | 0x800000;
  uint32_t shift = 126 - exp;  // 14..24
  uint32_t h = mant >> shift;
  uint32_t rem = mant & ((1u << shift) - 1);
  uint32_t halfway = 1u << (shift - 1);
  if (rem > halfway || (rem == halfway && (h & 1))) ++h;
  return static_cast<uint16_t>(sign | h);
}

float BFloat16ToFloat(uint16_t b) { return BitsToFloat(static_cast<uint32_t>(b) << 16); }

uint16_t FloatToBFloat16(float f) {
  uint32_t x = FloatBits(f);
  if ((x & 0x7FFFFFFF) > 0x7F800000) return static_cast<uint16_t>((x >> 16) | 0x0040);  // quiet
  uint32_t rounding_bias = 0x7FFF + ((x >> 16) & 1);
  return static_cast<uint16_t>((x + rounding_bias) >> 16);
}

absl::Status ConvertToF32(DType dtype, const uint8_t* src, size_t count, float* dst) {
  switch (dtype) {
    case DType::kF32:
      if (count > 0) std::memcpy(dst, src, count * sizeof(float));
      return absl::OkStatus();
    case DType::kF16:
      for (size_t i = 0; i < count; ++i) dst[i] = HalfToFloat(LoadU16(src + 2 * i));
      return absl::OkStatus();
    case DType::kBF16:
      for (size_t i = 0; i < count; ++i) dst[i] = BFloat16ToFloat(LoadU16(src + 2 * i));
      return absl::OkStatus();
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("ConvertToF32: dtype ", DTypeName(dtype),
                       " is not a float type (expected F32, F16 or BF16; hint: convert integer "
                       "tensors explicitly)"));
  }
}

}  // namespace fedlora::io
