// Exact arithmetic in GF(p), p = 2^61 - 1 (a Mersenne prime). Elements are uint64 in [0, p);
// products go through unsigned __int128 and a Mersenne reduction, so nothing overflows.
#ifndef FEDLORA_SECAGG_PRIME_FIELD_H_
#define FEDLORA_SECAGG_PRIME_FIELD_H_

#include <cstdint>

namespace fedlora::secagg::field {

inline constexpr uint64_t kPrime = (uint64_t{1} << 61) - 1;

// Reduces any 64-bit value mod p.
inline uint64_t Reduce(uint64_t x) {
  uint64_t r = (x & kPrime) + (x >> 61);
  return r >= kPrime ? r - kPrime : r;
}
inline uint64_t Add(uint64_t a, uint64_t b) {  // a, b < p, so a + b < 2^62: no overflow
  uint64_t r = a + b;
  return r >= kPrime ? r - kPrime : r;
}
inline uint64_t Sub(uint64_t a, uint64_t b) { return a >= b ? a - b : a + kPrime - b; }
inline uint64_t Mul(uint64_t a, uint64_t b) {
  const unsigned __int128 prod = static_cast<unsigned __int128>(a) * b;  // < 2^122
  const uint64_t lo = static_cast<uint64_t>(prod) & kPrime;
  const uint64_t hi = static_cast<uint64_t>(prod >> 61);  // < 2^61
  uint64_t r = lo + hi;                                   // < 2^62
  return r >= kPrime ? r - kPrime : r;
}
inline uint64_t Pow(uint64_t a, uint64_t e) {
  uint64_t r = 1;
  while (e) {
    if (e & 1) r = Mul(r, a);
    a = Mul(a, a);
    e >>= 1;
  }
  return r;
}
// Multiplicative inverse by Fermat (a != 0).
inline uint64_t Inv(uint64_t a) { return Pow(a, kPrime - 2); }

}  // namespace fedlora::secagg::field

#endif  // FEDLORA_SECAGG_PRIME_FIELD_H_
