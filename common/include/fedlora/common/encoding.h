// Hex encoding and SHA-256, for signatures, nonces and fingerprints.
#ifndef FEDLORA_COMMON_ENCODING_H_
#define FEDLORA_COMMON_ENCODING_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace fedlora {

// Lowercase hex of `bytes` (two characters per byte, no separators).
std::string HexEncode(std::string_view bytes);

// The bytes of an even-length hex string (upper or lower case accepted). INVALID_ARGUMENT for
// an odd length or a non-hex character (the message gives its position, not the input).
absl::StatusOr<std::string> HexDecode(std::string_view hex);

// The 32-byte SHA-256 digest of `data` (OpenSSL EVP_Digest). Aborts only if OpenSSL cannot
// compute a digest at all (a broken installation).
std::string Sha256(std::string_view data);

}  // namespace fedlora

#endif  // FEDLORA_COMMON_ENCODING_H_
