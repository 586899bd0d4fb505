#include "fedlora/secagg/bit_packing.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace fedlora::secagg {

uint64_t PackedSize(uint64_t n, int bits) { return (n * static_cast<uint64_t>(bits) + 7) / 8; }

std::string PackBits(const uint32_t* values, size_t n, int bits) {
  std::string out(PackedSize(n, bits), '\0');
  uint8_t* p = reinterpret_cast<uint8_t*>(&out[0]);
  if (bits == 32) {
    std::memcpy(p, values, n * 4);  // little-endian host (checked in mask_prg.cc)
    return out;
  }
  const uint64_t mask = (uint64_t{1} << bits) - 1;
  uint64_t acc = 0;
  int have = 0;
  size_t pos = 0;
  for (size_t i = 0; i < n; ++i) {
    acc |= (values[i] & mask) << have;
    have += bits;
    while (have >= 8) {
      p[pos++] = static_cast<uint8_t>(acc);
      acc >>= 8;
      have -= 8;
    }
  }
  if (have > 0) p[pos++] = static_cast<uint8_t>(acc);
  return out;
}

absl::Status UnpackAndAdd(const std::string& packed, int bits, uint32_t* acc, size_t n) {
  if (bits < 1 || bits > 32) {
    return absl::InvalidArgumentError(absl::StrCat("secagg: bits = ", bits, ", expected 1..32"));
  }
  if (packed.size() != PackedSize(n, bits)) {
    return absl::InvalidArgumentError(absl::StrCat("secagg: packed vector has ", packed.size(),
                                                   " bytes, expected ", PackedSize(n, bits),
                                                   " for ", n, " entries of ", bits, " bits"));
  }
  const uint8_t* p = reinterpret_cast<const uint8_t*>(packed.data());
  if (bits == 32) {
    for (size_t i = 0; i < n; ++i) {
      uint32_t v;
      std::memcpy(&v, p + 4 * i, 4);
      acc[i] += v;
    }
    return absl::OkStatus();
  }
  const uint64_t mask = (uint64_t{1} << bits) - 1;
  uint64_t buf = 0;
  int have = 0;
  size_t pos = 0;
  for (size_t i = 0; i < n; ++i) {
    while (have < bits) {
      buf |= static_cast<uint64_t>(p[pos++]) << have;
      have += 8;
    }
    acc[i] += static_cast<uint32_t>(buf & mask);
    buf >>= bits;
    have -= bits;
  }
  return absl::OkStatus();
}

absl::Status UnpackBits(const std::string& packed, int bits, size_t n, std::vector<uint32_t>* out) {
  out->assign(n, 0);
  return UnpackAndAdd(packed, bits, out->data(), n);
}

}  // namespace fedlora::secagg
