// Fixed-size secret bytes that are wiped on destruction, and a constant-time comparison.
#ifndef FEDLORA_SECAGG_SECRET_H_
#define FEDLORA_SECAGG_SECRET_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace fedlora::secagg {

// 32 secret bytes (an X25519 private key, a PRG seed, an AES key). The destructor and
// Clear() overwrite the bytes with OPENSSL_cleanse. Never log the contents.
class Secret32 {
 public:
  static constexpr size_t kSize = 32;
  Secret32() { bytes_.fill(0); }
  explicit Secret32(const uint8_t* data);
  Secret32(const Secret32& other) = default;
  Secret32& operator=(const Secret32& other) = default;
  ~Secret32() { Clear(); }

  void Clear();
  uint8_t* data() { return bytes_.data(); }
  const uint8_t* data() const { return bytes_.data(); }
  static constexpr size_t size() { return kSize; }

 private:
  std::array<uint8_t, kSize> bytes_;
};

// True when a and b have the same length and contents; the time taken depends only on the
// length (CRYPTO_memcmp).
bool ConstantTimeEquals(const std::string& a, const std::string& b);
bool ConstantTimeEquals(const Secret32& a, const Secret32& b);

// Overwrites a std::string's bytes (for serialized secrets) before it is freed.
void CleanseString(std::string& s);

}  // namespace fedlora::secagg

#endif  // FEDLORA_SECAGG_SECRET_H_
