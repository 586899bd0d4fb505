// The mask PRG: AES-256-CTR (zero IV) keyed by a 32-byte seed, read as little-endian uint32
// words and added to / subtracted from an accumulator mod 2^32 (callers reduce mod 2^b at
// the end; 2^b divides 2^32 so the result is exact). Each seed must key one expansion only.
#ifndef FEDLORA_SECAGG_MASK_PRG_H_
#define FEDLORA_SECAGG_MASK_PRG_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "fedlora/secagg/secret.h"

namespace fedlora::secagg {

class MaskExpander {
 public:
  MaskExpander();
  ~MaskExpander();
  MaskExpander(const MaskExpander&) = delete;
  MaskExpander& operator=(const MaskExpander&) = delete;

  // acc[i] += PRG(seed)[i] (or -= when `subtract`), i < n, wrapping mod 2^32.
  void Apply(const Secret32& seed, bool subtract, uint32_t* acc, size_t n);

  // PRG(seed)[0..n) (for tests).
  std::vector<uint32_t> Expand(const Secret32& seed, size_t n);

 private:
  struct Impl;
  Impl* impl_;
};

}  // namespace fedlora::secagg

#endif  // FEDLORA_SECAGG_MASK_PRG_H_
