// AES-256-GCM sealing of Shamir share payloads exchanged between devices via the server.
#ifndef FEDLORA_SECAGG_AEAD_H_
#define FEDLORA_SECAGG_AEAD_H_

#include <string>

#include "absl/status/statusor.h"
#include "fedlora/secagg/rng.h"
#include "fedlora/secagg/secret.h"

namespace fedlora::secagg {

inline constexpr size_t kGcmNonceSize = 12;
inline constexpr size_t kGcmTagSize = 16;

// Returns nonce(12, from rng) || AES-256-GCM(key, plaintext, aad) || tag(16).
std::string AeadSeal(const Secret32& key, const std::string& aad, const std::string& plaintext,
                     RandomSource& rng);

// Inverse of AeadSeal. INVALID_ARGUMENT if `sealed` is shorter than nonce + tag;
// DATA_LOSS if authentication fails (tampered ciphertext, wrong key or wrong aad).
absl::StatusOr<std::string> AeadOpen(const Secret32& key, const std::string& aad,
                                     const std::string& sealed);

}  // namespace fedlora::secagg

#endif  // FEDLORA_SECAGG_AEAD_H_
