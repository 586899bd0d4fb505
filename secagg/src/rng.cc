#include "fedlora/secagg/rng.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <cstdlib>
#include <cstring>
#include <iostream>

namespace fedlora::secagg {
namespace {
[[noreturn]] void FatalCrypto(const char* what) {
  std::cerr << "fedlora secagg: fatal: " << what << " failed\n";
  std::abort();
}
}  // namespace

uint64_t Rng::NextU64() {
  uint8_t b[8];
  Fill(b, sizeof(b));
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | b[i];
  return v;
}

uint64_t Rng::Uniform(uint64_t bound) {
  // Rejection sampling removes modulo bias.
  const uint64_t limit = UINT64_MAX - (UINT64_MAX % bound);
  uint64_t v;
  do {
    v = NextU64();
  } while (v >= limit);
  return v % bound;
}

double Rng::UniformDouble() { return static_cast<double>(NextU64() >> 11) * 0x1.0p-53; }

Secret32 Rng::NextSecret() {
  Secret32 s;
  Fill(s.data(), s.size());
  return s;
}

void SecureRng::Fill(uint8_t* out, size_t n) {
  if (n == 0) return;
  if (RAND_bytes(out, static_cast<int>(n)) != 1) FatalCrypto("RAND_bytes");
}

struct DeterministicRng::Impl {
  EVP_CIPHER_CTX* ctx = nullptr;
  ~Impl() { EVP_CIPHER_CTX_free(ctx); }
};

DeterministicRng::DeterministicRng(uint64_t seed) : impl_(std::make_unique<Impl>()) {
  uint8_t buf[8 + 24] = {0};
  std::memcpy(buf, &seed, sizeof(seed));
  std::memcpy(buf + 8, "fedlora-deterministic-rng", 24);
  Secret32 key;
  SHA256(buf, sizeof(buf), key.data());
  Init(key);
}

DeterministicRng::DeterministicRng(const Secret32& key) : impl_(std::make_unique<Impl>()) {
  Init(key);
}

DeterministicRng::~DeterministicRng() = default;

void DeterministicRng::Init(const Secret32& key) {
  impl_->ctx = EVP_CIPHER_CTX_new();
  const uint8_t iv[16] = {0};
  if (impl_->ctx == nullptr ||
      EVP_EncryptInit_ex(impl_->ctx, EVP_aes_256_ctr(), nullptr, key.data(), iv) != 1) {
    FatalCrypto("AES-256-CTR init");
  }
}

void DeterministicRng::Fill(uint8_t* out, size_t n) {
  std::memset(out, 0, n);
  while (n > 0) {
    const int chunk = static_cast<int>(n > (1u << 30) ? (1u << 30) : n);
    int len = 0;
    if (EVP_EncryptUpdate(impl_->ctx, out, &len, out, chunk) != 1) {
      FatalCrypto("AES-256-CTR keystream");
    }
    out += chunk;
    n -= chunk;
  }
}

}  // namespace fedlora::secagg
