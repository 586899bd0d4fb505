#include "fedlora/secagg/secret.h"

#include <openssl/crypto.h>

#include <cstring>

namespace fedlora::secagg {

Secret32::Secret32(const uint8_t* data) { std::memcpy(bytes_.data(), data, kSize); }

void Secret32::Clear() { OPENSSL_cleanse(bytes_.data(), kSize); }

bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool ConstantTimeEquals(const Secret32& a, const Secret32& b) {
  return CRYPTO_memcmp(a.data(), b.data(), Secret32::kSize) == 0;
}

void CleanseString(std::string& s) {
  if (!s.empty()) OPENSSL_cleanse(&s[0], s.size());
  s.clear();
}

}  // namespace fedlora::secagg
