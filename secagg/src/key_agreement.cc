#include "fedlora/secagg/key_agreement.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/sha.h>

#include <cstdlib>
#include <iostream>

#include "absl/strings/str_cat.h"

namespace fedlora::secagg {
namespace internal {

// Outside the anonymous namespace: X25519KeyPair::EvpKey holds one, and a class with external
// linkage should not hold a type with internal linkage (GCC's -Wsubobject-linkage, which fires
// once this file is included into a unity build's translation unit).
struct PkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};

}  // namespace internal

using internal::PkeyDeleter;

namespace {

[[noreturn]] void FatalCrypto(const char* what) {
  std::cerr << "fedlora secagg: fatal: " << what << " failed\n";
  std::abort();
}

struct PkeyCtxDeleter {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};

EVP_KDF* HkdfAlgorithm() {
  static EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  if (kdf == nullptr) FatalCrypto("EVP_KDF_fetch(HKDF)");
  return kdf;
}

}  // namespace

struct X25519KeyPair::EvpKey {
  std::unique_ptr<EVP_PKEY, PkeyDeleter> key;
};

X25519KeyPair::X25519KeyPair(X25519KeyPair&&) noexcept = default;
X25519KeyPair& X25519KeyPair::operator=(X25519KeyPair&&) noexcept = default;
X25519KeyPair::~X25519KeyPair() = default;

absl::StatusOr<X25519KeyPair> X25519KeyPair::FromPrivateKey(const Secret32& private_key) {
  X25519KeyPair kp;
  kp.private_key_ = private_key;
  kp.pkey_ = std::make_unique<EvpKey>();
  kp.pkey_->key.reset(EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, private_key.data(),
                                                   private_key.size()));
  if (!kp.pkey_->key) return absl::InvalidArgumentError("secagg: invalid X25519 private key");
  size_t len = kX25519KeySize;
  kp.public_key_.resize(kX25519KeySize);
  if (EVP_PKEY_get_raw_public_key(kp.pkey_->key.get(),
                                  reinterpret_cast<uint8_t*>(&kp.public_key_[0]), &len) != 1 ||
      len != kX25519KeySize) {
    return absl::InvalidArgumentError("secagg: cannot derive X25519 public key");
  }
  return kp;
}

X25519KeyPair X25519KeyPair::Generate(RandomSource& rng) {
  Secret32 sk = NextSecret(rng);
  auto kp = FromPrivateKey(sk);
  if (!kp.ok()) FatalCrypto("X25519 key generation");
  return std::move(kp).value();
}

absl::StatusOr<Secret32> X25519KeyPair::Agree(const std::string& peer_public_key) const {
  if (peer_public_key.size() != kX25519KeySize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "secagg: peer public key has ", peer_public_key.size(), " bytes, expected 32 (X25519)"));
  }
  std::unique_ptr<EVP_PKEY, PkeyDeleter> peer(EVP_PKEY_new_raw_public_key(
      EVP_PKEY_X25519, nullptr, reinterpret_cast<const uint8_t*>(peer_public_key.data()),
      kX25519KeySize));
  if (!peer) return absl::InvalidArgumentError("secagg: peer X25519 public key rejected");
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxDeleter> ctx(EVP_PKEY_CTX_new(pkey_->key.get(), nullptr));
  if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1) FatalCrypto("EVP_PKEY_derive_init");
  if (EVP_PKEY_derive_set_peer(ctx.get(), peer.get()) != 1) {
    return absl::InvalidArgumentError("secagg: peer X25519 public key rejected for agreement");
  }
  Secret32 shared;
  size_t len = shared.size();
  if (EVP_PKEY_derive(ctx.get(), shared.data(), &len) != 1 || len != shared.size()) {
    return absl::InvalidArgumentError(
        "secagg: X25519 agreement failed (hint: low-order peer public key)");
  }
  static const Secret32 kZero;
  if (ConstantTimeEquals(shared, kZero)) {
    return absl::InvalidArgumentError("secagg: X25519 agreement gave the all-zero secret");
  }
  return shared;
}

Secret32 HkdfSha256(const Secret32& ikm, const std::string& salt, const std::string& info) {
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(HkdfAlgorithm());
  if (ctx == nullptr) FatalCrypto("EVP_KDF_CTX_new");
  char digest[] = "SHA256";
  OSSL_PARAM params[5];
  params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
  params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
                                                const_cast<uint8_t*>(ikm.data()), ikm.size());
  params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<char*>(salt.data()),
                                                salt.size());
  params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<char*>(info.data()),
                                                info.size());
  params[4] = OSSL_PARAM_construct_end();
  Secret32 out;
  if (EVP_KDF_derive(ctx, out.data(), out.size(), params) != 1) FatalCrypto("HKDF derive");
  EVP_KDF_CTX_free(ctx);
  return out;
}

std::string Sha256(const std::string& data) {
  std::string out(SHA256_DIGEST_LENGTH, '\0');
  SHA256(reinterpret_cast<const uint8_t*>(data.data()), data.size(),
         reinterpret_cast<uint8_t*>(&out[0]));
  return out;
}

}  // namespace fedlora::secagg
