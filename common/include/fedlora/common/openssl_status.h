// Turning OpenSSL failures into absl::Status at the edge of fedlora's crypto code.
//
// OpenSSL reports errors on a thread-local queue. Every fedlora function that calls OpenSSL
// converts a failure into a status with OpenSslError() right where it happens, which also
// drains the queue so that a stale error cannot be blamed on a later, unrelated call.
#ifndef FEDLORA_COMMON_OPENSSL_STATUS_H_
#define FEDLORA_COMMON_OPENSSL_STATUS_H_

#include <string_view>

#include "absl/status/status.h"

namespace fedlora {

// A status with `code` whose message is `what` followed by the text of every error queued by
// OpenSSL on this thread (ERR_error_string form, "; "-separated), or "(no OpenSSL error
// queued)". Clears the queue. Never includes key material: OpenSSL's error strings name the
// library, function and reason only.
absl::Status OpenSslError(absl::StatusCode code, std::string_view what);

// Discards any errors queued by OpenSSL on this thread (e.g. after an expected failure such
// as a signature that does not verify).
void ClearOpenSslErrors();

// Constant-time equality of two byte strings (CRYPTO_memcmp); strings of different lengths
// compare unequal (the length itself is not secret). Use it wherever a secret, or a value
// derived from one (MAC, token), is compared.
bool ConstantTimeEqual(std::string_view a, std::string_view b);

}  // namespace fedlora

#endif  // FEDLORA_COMMON_OPENSSL_STATUS_H_
