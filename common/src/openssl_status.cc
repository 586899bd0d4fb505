#include "fedlora/common/openssl_status.h"

#include <openssl/crypto.h>
#include <openssl/err.h>

#include <string>

#include "absl/strings/str_cat.h"

namespace fedlora {

absl::Status OpenSslError(absl::StatusCode code, std::string_view what) {
  std::string details;
  unsigned long err;  // NOLINT(runtime/int): OpenSSL's type.
  while ((err = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(err, buf, sizeof(buf));
    if (!details.empty()) details += "; ";
    details += buf;
  }
  if (details.empty()) details = "no OpenSSL error queued";
  std::string message(what);
  absl::StrAppend(&message, " (OpenSSL: ", details, ")");
  return absl::Status(code, message);
}

void ClearOpenSslErrors() { ERR_clear_error(); }

bool ConstantTimeEqual(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace fedlora
