#include "fedlora/secagg/mask_prg.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstdlib>
#include <cstring>
#include <iostream>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "secagg mask PRG assumes a little-endian host"
#endif

namespace fedlora::secagg {
namespace {
// Words per AES-CTR call: 16 KiB stays in L1/L2 while it is added into the accumulator.
constexpr size_t kChunkWords = 4096;

// Fetched once: OpenSSL 3 otherwise looks the implementation up on every init.
const EVP_CIPHER* AesCtr() {
  static EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "AES-256-CTR", nullptr);
  if (cipher == nullptr) {
    std::cerr << "fedlora secagg: fatal: EVP_CIPHER_fetch(AES-256-CTR) failed\n";
    std::abort();
  }
  return cipher;
}
}  // namespace

struct MaskExpander::Impl {
  EVP_CIPHER_CTX* ctx = nullptr;
  uint32_t zeros[kChunkWords];
  uint32_t stream[kChunkWords];
};

MaskExpander::MaskExpander() : impl_(new Impl) {
  impl_->ctx = EVP_CIPHER_CTX_new();
  if (impl_->ctx == nullptr) {
    std::cerr << "fedlora secagg: fatal: EVP_CIPHER_CTX_new failed\n";
    std::abort();
  }
  std::memset(impl_->zeros, 0, sizeof(impl_->zeros));
}

MaskExpander::~MaskExpander() {
  OPENSSL_cleanse(impl_->stream, sizeof(impl_->stream));
  EVP_CIPHER_CTX_free(impl_->ctx);
  delete impl_;
}

void MaskExpander::Apply(const Secret32& seed, bool subtract, uint32_t* acc, size_t n) {
  static const uint8_t kIv[16] = {0};
  if (EVP_EncryptInit_ex(impl_->ctx, AesCtr(), nullptr, seed.data(), kIv) != 1) {
    std::cerr << "fedlora secagg: fatal: AES-256-CTR init failed\n";
    std::abort();
  }
  uint32_t* stream = impl_->stream;
  for (size_t off = 0; off < n; off += kChunkWords) {
    const size_t m = n - off < kChunkWords ? n - off : kChunkWords;
    int len = 0;
    EVP_EncryptUpdate(impl_->ctx, reinterpret_cast<uint8_t*>(stream), &len,
                      reinterpret_cast<const uint8_t*>(impl_->zeros), static_cast<int>(m * 4));
    uint32_t* a = acc + off;
    // The keystream is read as little-endian words (x86/ARM hosts are little-endian).
    if (subtract) {
      for (size_t i = 0; i < m; ++i) a[i] -= stream[i];
    } else {
      for (size_t i = 0; i < m; ++i) a[i] += stream[i];
    }
  }
}

std::vector<uint32_t> MaskExpander::Expand(const Secret32& seed, size_t n) {
  std::vector<uint32_t> out(n, 0);
  Apply(seed, false, out.data(), n);
  return out;
}

}  // namespace fedlora::secagg
