#include "fedlora/coordinator/selection_coin.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdlib>

namespace fedlora::coordinator {

double CoinUniform(const std::string& key, uint64_t round, const std::string& device_id) {
  std::string message(8, '\0');
  for (int i = 0; i < 8; ++i) message[i] = static_cast<char>((round >> (56 - 8 * i)) & 0xff);
  message += device_id;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac,
           &mac_len) == nullptr ||
      mac_len < 8) {
    std::abort();  // OpenSSL without SHA-256: nothing sensible to sample with
  }
  uint64_t x = 0;
  for (int i = 0; i < 8; ++i) x = (x << 8) | mac[i];
  return static_cast<double>(x >> 11) * 0x1.0p-53;
}

bool CoinSelected(const std::string& key, uint64_t round, const std::string& device_id, double q) {
  if (q >= 1) return true;
  if (q <= 0) return false;
  return CoinUniform(key, round, device_id) < q;
}

}  // namespace fedlora::coordinator
