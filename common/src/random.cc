#include "fedlora/common/random.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>

namespace fedlora {
namespace {

[[noreturn]] void FatalCrypto(const char* what) {
  std::fprintf(stderr, "fedlora: fatal: %s failed: no randomness, refusing to continue\n", what);
  std::abort();
}

uint64_t LoadLe64(const uint8_t* b) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | b[i];
  return v;
}

uint64_t Mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

// ---- RandomSource ----------------------------------------------------------------------

uint64_t RandomSource::NextU64() {
  uint8_t b[8];
  Fill(b, sizeof(b));
  return LoadLe64(b);
}

uint64_t RandomSource::Uniform(uint64_t bound) {
  assert(bound > 0);
  const uint64_t max = std::numeric_limits<uint64_t>::max();
  const uint64_t limit = max - max % bound;
  uint64_t v;
  do {
    v = NextU64();
  } while (v >= limit);
  return v % bound;
}

double RandomSource::UniformDouble() { return static_cast<double>(NextU64() >> 11) * 0x1.0p-53; }

double RandomSource::StandardNormal() {
  double u, v, s;
  do {
    u = 2 * UniformDouble() - 1;
    v = 2 * UniformDouble() - 1;
    s = u * u + v * v;
  } while (s >= 1 || s == 0);
  return u * std::sqrt(-2 * std::log(s) / s);
}

bool RandomSource::Bernoulli(double p) {
  if (p <= 0) return false;
  if (p >= 1) return true;
  return UniformDouble() < p;
}

size_t RandomSource::Weighted(const std::vector<double>& weights) {
  assert(!weights.empty());
  double total = 0;
  for (double w : weights) total += w;
  assert(total > 0);
  double r = UniformDouble() * total;
  for (size_t i = 0; i < weights.size(); ++i) {
    if (r < weights[i]) return i;
    r -= weights[i];
  }
  return weights.size() - 1;  // floating-point slack
}

// ---- SecureRandom ------------------------------------------------------------------------

namespace {
constexpr size_t kBlock = 4096;
constexpr uint64_t kRekeyBytes = uint64_t{1} << 20;

// Bumped in every child after fork(): a SecureRandom that sees a new generation drops its
// buffered bytes and key, so parent and child never hand out the same stream.
std::atomic<uint64_t> g_fork_generation{0};
void OnForkChild() { g_fork_generation.fetch_add(1, std::memory_order_relaxed); }
std::once_flag g_atfork_once;
}  // namespace

struct SecureRandom::Impl {
  EVP_CIPHER_CTX* ctx = nullptr;
  std::array<uint8_t, kBlock> buf;
  size_t pos = kBlock;
  uint64_t since_rekey = kRekeyBytes;  // forces a key before the first block
  uint64_t generation = 0;
  // After a fork in this process's history: forget the buffer and the key.
  void CheckFork() {
    const uint64_t g = g_fork_generation.load(std::memory_order_relaxed);
    if (g != generation) {
      OPENSSL_cleanse(buf.data(), buf.size());
      pos = buf.size();
      since_rekey = kRekeyBytes;
      generation = g;
    }
  }
  ~Impl() {
    OPENSSL_cleanse(buf.data(), buf.size());
    EVP_CIPHER_CTX_free(ctx);  // cleanses the key schedule
  }
};

SecureRandom::SecureRandom() : impl_(std::make_unique<Impl>()) {
  std::call_once(g_atfork_once, [] { pthread_atfork(nullptr, nullptr, OnForkChild); });
  impl_->generation = g_fork_generation.load(std::memory_order_relaxed);
  impl_->ctx = EVP_CIPHER_CTX_new();
  if (impl_->ctx == nullptr) FatalCrypto("EVP_CIPHER_CTX_new");
}

SecureRandom::~SecureRandom() = default;

void SecureRandom::Rekey() {
  uint8_t key_iv[48];
  if (RAND_bytes(key_iv, sizeof(key_iv)) != 1) FatalCrypto("RAND_bytes");
  if (EVP_EncryptInit_ex(impl_->ctx, EVP_aes_256_ctr(), nullptr, key_iv, key_iv + 32) != 1) {
    FatalCrypto("AES-256-CTR init");
  }
  OPENSSL_cleanse(key_iv, sizeof(key_iv));
  impl_->since_rekey = 0;
}

void SecureRandom::Refill() {
  Impl& s = *impl_;
  if (s.since_rekey >= kRekeyBytes) Rekey();
  std::memset(s.buf.data(), 0, s.buf.size());
  int len = 0;
  if (EVP_EncryptUpdate(s.ctx, s.buf.data(), &len, s.buf.data(), static_cast<int>(s.buf.size())) !=
      1) {
    FatalCrypto("AES-256-CTR keystream");
  }
  s.since_rekey += s.buf.size();
  s.pos = 0;
}

void SecureRandom::Fill(uint8_t* out, size_t n) {
  Impl& s = *impl_;
  s.CheckFork();
  while (n > 0) {
    if (s.pos == s.buf.size()) Refill();
    const size_t take = std::min(n, s.buf.size() - s.pos);
    std::memcpy(out, s.buf.data() + s.pos, take);
    OPENSSL_cleanse(s.buf.data() + s.pos, take);  // handed-out bytes do not linger here
    s.pos += take;
    out += take;
    n -= take;
  }
}

uint64_t SecureRandom::NextU64() {
  Impl& s = *impl_;
  s.CheckFork();
  if (s.buf.size() - s.pos < 8) {
    uint8_t b[8];
    Fill(b, 8);
    return LoadLe64(b);
  }
  uint8_t* p = s.buf.data() + s.pos;
  const uint64_t v = LoadLe64(p);
  std::memset(p, 0, 8);  // cheap wipe of what was handed out (the block is cleansed again)
  s.pos += 8;
  return v;
}

// ---- SeededRandom ------------------------------------------------------------------------

struct SeededRandom::Impl {
  EVP_CIPHER_CTX* ctx = nullptr;
  std::array<uint8_t, 4096> buf;
  size_t pos = 4096;
  ~Impl() { EVP_CIPHER_CTX_free(ctx); }
};

SeededRandom::SeededRandom(uint64_t seed) : impl_(std::make_unique<Impl>()) {
  uint8_t buf[8 + 24] = {0};
  for (int i = 0; i < 8; ++i) buf[i] = static_cast<uint8_t>(seed >> (8 * i));
  std::memcpy(buf + 8, "fedlora-deterministic-rng", 24);
  uint8_t key[32];
  SHA256(buf, sizeof(buf), key);
  Init(key);
  OPENSSL_cleanse(key, sizeof(key));
}

SeededRandom::SeededRandom(const uint8_t key[32]) : impl_(std::make_unique<Impl>()) { Init(key); }

SeededRandom::~SeededRandom() = default;

void SeededRandom::Init(const uint8_t key[32]) {
  impl_->ctx = EVP_CIPHER_CTX_new();
  const uint8_t iv[16] = {0};
  if (impl_->ctx == nullptr ||
      EVP_EncryptInit_ex(impl_->ctx, EVP_aes_256_ctr(), nullptr, key, iv) != 1) {
    FatalCrypto("AES-256-CTR init");
  }
}

void SeededRandom::Refill() {
  std::memset(impl_->buf.data(), 0, impl_->buf.size());
  int len = 0;
  if (EVP_EncryptUpdate(impl_->ctx, impl_->buf.data(), &len, impl_->buf.data(),
                        static_cast<int>(impl_->buf.size())) != 1) {
    FatalCrypto("AES-256-CTR keystream");
  }
  impl_->pos = 0;
}

void SeededRandom::Fill(uint8_t* out, size_t n) {
  Impl& s = *impl_;
  while (n > 0) {
    if (s.pos == s.buf.size()) Refill();
    const size_t take = std::min(n, s.buf.size() - s.pos);
    std::memcpy(out, s.buf.data() + s.pos, take);
    s.pos += take;
    out += take;
    n -= take;
  }
}

uint64_t SeededRandom::NextU64() {
  Impl& s = *impl_;
  if (s.buf.size() - s.pos < 8) {
    uint8_t b[8];
    Fill(b, 8);
    return LoadLe64(b);
  }
  const uint64_t v = LoadLe64(s.buf.data() + s.pos);
  s.pos += 8;
  return v;
}

// ---- SplitMix64 --------------------------------------------------------------------------

uint64_t SplitMix64::NextU64() {
  state_ += 0x9e3779b97f4a7c15ULL;
  return Mix(state_);
}

void SplitMix64::Fill(uint8_t* out, size_t n) {
  while (n > 0) {
    uint64_t v = NextU64();
    const size_t take = std::min<size_t>(n, 8);
    for (size_t i = 0; i < take; ++i) out[i] = static_cast<uint8_t>(v >> (8 * i));
    out += take;
    n -= take;
  }
}

uint64_t DeriveSeed(uint64_t seed, uint64_t stream) {
  return Mix(Mix(seed + 0x9e3779b97f4a7c15ULL) ^ (stream * 0xd1b54a32d192ed03ULL + 1));
}

}  // namespace fedlora
