// Packs vectors of b-bit integers (1 <= b <= 32) into ceil(n * b / 8) bytes, entry i at bit
// offset i * b, least significant bit first. Masked inputs travel packed so that the
// upload costs the same as the plain b-bit vector.
#ifndef FEDLORA_SECAGG_BIT_PACKING_H_
#define FEDLORA_SECAGG_BIT_PACKING_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace fedlora::secagg {

// Bytes needed for n entries of `bits` bits.
uint64_t PackedSize(uint64_t n, int bits);

// Packs values[i] & (2^bits - 1).
std::string PackBits(const uint32_t* values, size_t n, int bits);

// Adds the n packed entries into acc (mod 2^32). INVALID_ARGUMENT if packed.size() !=
// PackedSize(n, bits) or bits is outside [1, 32].
absl::Status UnpackAndAdd(const std::string& packed, int bits, uint32_t* acc, size_t n);

// Unpacks into a fresh vector; same errors as UnpackAndAdd.
absl::Status UnpackBits(const std::string& packed, int bits, size_t n, std::vector<uint32_t>* out);

}  // namespace fedlora::secagg

#endif  // FEDLORA_SECAGG_BIT_PACKING_H_
