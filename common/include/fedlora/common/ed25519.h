// Ed25519 signing keys (RFC 8032), on OpenSSL 3's EVP API.
//
// Devices hold an Ed25519Key from enrolment on and sign every call (see call_signature.h);
// the coordinator keeps only their 32-byte public keys and checks with VerifyEd25519. Key
// bytes are never logged and never appear in a status message.
#ifndef FEDLORA_COMMON_ED25519_H_
#define FEDLORA_COMMON_ED25519_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

typedef struct evp_pkey_st EVP_PKEY;  // From <openssl/types.h>.

namespace fedlora {

inline constexpr size_t kEd25519PublicKeyBytes = 32;
inline constexpr size_t kEd25519SignatureBytes = 64;

// An Ed25519 private key. Movable, not copyable; the OpenSSL key is freed (and its secret
// cleansed by OpenSSL) on destruction. A moved-from key must not be used.
class Ed25519Key {
 public:
  // A fresh key from OpenSSL's DRBG. INTERNAL if OpenSSL fails.
  static absl::StatusOr<Ed25519Key> Generate();

  // Reads an unencrypted PEM PKCS#8 ("-----BEGIN PRIVATE KEY-----") Ed25519 key, as written
  // by SavePrivate or `openssl genpkey -algorithm ed25519`. Fails with NOT_FOUND (no such
  // file), FAILED_PRECONDITION (the file is readable or writable by group/others: the message
  // says "chmod 600 PATH"; or it is not a regular file), INVALID_ARGUMENT (not a PEM private
  // key, or a key of another algorithm), INTERNAL (I/O).
  static absl::StatusOr<Ed25519Key> LoadPrivate(const std::string& path);

  // Writes the key as unencrypted PEM PKCS#8 to `path` with mode 0600, atomically (a temp
  // file created O_EXCL with mode 0600, then renamed over `path`, replacing an existing file).
  // Never readable by others, even briefly. INTERNAL/RESOURCE_EXHAUSTED on I/O errors.
  absl::Status SavePrivate(const std::string& path) const;

  // The 32-byte raw public key (RFC 8032 encoding).
  std::string PublicRaw() const;

  // The 64-byte signature of `message` (pure Ed25519, no pre-hash). INTERNAL if OpenSSL fails.
  absl::StatusOr<std::string> Sign(std::string_view message) const;

  Ed25519Key(Ed25519Key&&) noexcept;
  Ed25519Key& operator=(Ed25519Key&&) noexcept;
  Ed25519Key(const Ed25519Key&) = delete;
  Ed25519Key& operator=(const Ed25519Key&) = delete;
  ~Ed25519Key();

 private:
  explicit Ed25519Key(EVP_PKEY* pkey) : pkey_(pkey) {}
  EVP_PKEY* pkey_ = nullptr;
};

// Checks an Ed25519 signature. OK if `signature` is a valid signature of `message` under
// `public_raw`. INVALID_ARGUMENT if public_raw is not 32 bytes, the signature not 64 bytes, or
// the public key is not a valid encoding; UNAUTHENTICATED "signature does not verify"
// otherwise.
absl::Status VerifyEd25519(std::string_view public_raw, std::string_view message,
                           std::string_view signature);

}  // namespace fedlora

#endif  // FEDLORA_COMMON_ED25519_H_
