// X25519 key agreement and HKDF-SHA256 (OpenSSL 3 EVP).
#ifndef FEDLORA_SECAGG_KEY_AGREEMENT_H_
#define FEDLORA_SECAGG_KEY_AGREEMENT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "fedlora/secagg/rng.h"
#include "fedlora/secagg/secret.h"

namespace fedlora::secagg {

inline constexpr size_t kX25519KeySize = 32;

// An X25519 key pair. The private key is wiped when the object is destroyed.
class X25519KeyPair {
 public:
  // Draws 32 bytes from `rng` as the private key. Fatal only if OpenSSL fails internally.
  static X25519KeyPair Generate(RandomSource& rng);
  // Rebuilds a key pair from a private key (e.g. one reconstructed from Shamir shares).
  // INVALID_ARGUMENT if OpenSSL rejects the key.
  static absl::StatusOr<X25519KeyPair> FromPrivateKey(const Secret32& private_key);

  X25519KeyPair(X25519KeyPair&&) noexcept;
  X25519KeyPair& operator=(X25519KeyPair&&) noexcept;
  ~X25519KeyPair();

  // The 32-byte public key.
  const std::string& public_key() const { return public_key_; }
  const Secret32& private_key() const { return private_key_; }

  // X25519(private, peer_public). INVALID_ARGUMENT if the peer key is not 32 bytes or is a
  // low-order point (all-zero shared secret).
  absl::StatusOr<Secret32> Agree(const std::string& peer_public_key) const;

 private:
  X25519KeyPair() = default;
  Secret32 private_key_;
  std::string public_key_;
  struct EvpKey;
  std::unique_ptr<EvpKey> pkey_;
};

// HKDF-SHA256(ikm, salt, info) -> 32 bytes. Fatal only if OpenSSL fails internally.
Secret32 HkdfSha256(const Secret32& ikm, const std::string& salt, const std::string& info);

// SHA-256 of `data` as 32 raw bytes.
std::string Sha256(const std::string& data);

}  // namespace fedlora::secagg

#endif  // FEDLORA_SECAGG_KEY_AGREEMENT_H_
