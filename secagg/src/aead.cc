#include "fedlora/secagg/aead.h"

#include <openssl/evp.h>

#include <cstdlib>
#include <iostream>
#include <memory>

namespace fedlora::secagg {
namespace {

struct CtxDeleter {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using CtxPtr = std::unique_ptr<EVP_CIPHER_CTX, CtxDeleter>;

[[noreturn]] void FatalCrypto(const char* what) {
  std::cerr << "fedlora secagg: fatal: " << what << " failed\n";
  std::abort();
}

const EVP_CIPHER* AesGcm() {
  static EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  if (cipher == nullptr) FatalCrypto("EVP_CIPHER_fetch(AES-256-GCM)");
  return cipher;
}

uint8_t* Bytes(std::string& s, size_t off) { return reinterpret_cast<uint8_t*>(&s[0]) + off; }
const uint8_t* Bytes(const std::string& s, size_t off = 0) {
  return reinterpret_cast<const uint8_t*>(s.data()) + off;
}

}  // namespace

std::string AeadSeal(const Secret32& key, const std::string& aad, const std::string& plaintext,
                     RandomSource& rng) {
  std::string out(kGcmNonceSize + plaintext.size() + kGcmTagSize, '\0');
  rng.Fill(Bytes(out, 0), kGcmNonceSize);
  CtxPtr ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), AesGcm(), nullptr, key.data(), Bytes(out, 0)) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, Bytes(aad), static_cast<int>(aad.size())) != 1 ||
      EVP_EncryptUpdate(ctx.get(), Bytes(out, kGcmNonceSize), &len, Bytes(plaintext),
                        static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), Bytes(out, kGcmNonceSize + len), &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kGcmTagSize,
                          Bytes(out, kGcmNonceSize + plaintext.size())) != 1) {
    FatalCrypto("AES-256-GCM seal");
  }
  return out;
}

absl::StatusOr<std::string> AeadOpen(const Secret32& key, const std::string& aad,
                                     const std::string& sealed) {
  if (sealed.size() < kGcmNonceSize + kGcmTagSize) {
    return absl::InvalidArgumentError("secagg: sealed share shorter than nonce + tag");
  }
  const size_t n = sealed.size() - kGcmNonceSize - kGcmTagSize;
  std::string plain(n, '\0');
  CtxPtr ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), AesGcm(), nullptr, key.data(), Bytes(sealed)) != 1 ||
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, Bytes(aad), static_cast<int>(aad.size())) != 1 ||
      EVP_DecryptUpdate(ctx.get(), n ? Bytes(plain, 0) : nullptr, &len,
                        Bytes(sealed, kGcmNonceSize), static_cast<int>(n)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kGcmTagSize,
                          const_cast<uint8_t*>(Bytes(sealed, kGcmNonceSize + n))) != 1) {
    FatalCrypto("AES-256-GCM open setup");
  }
  if (EVP_DecryptFinal_ex(ctx.get(), n ? Bytes(plain, len) : nullptr, &len) != 1) {
    CleanseString(plain);
    return absl::DataLossError(
        "secagg: share ciphertext failed authentication (hint: tampered or misrouted message)");
  }
  return plain;
}

}  // namespace fedlora::secagg
