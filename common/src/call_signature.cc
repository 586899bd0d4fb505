#include "fedlora/common/call_signature.h"

#include "absl/strings/str_cat.h"

namespace fedlora {

std::string CallSigningBytes(std::string_view method, std::string_view device_id,
                             int64_t unix_millis, std::string_view nonce, std::string_view body) {
  std::string out(kCallSignatureDomain);
  out.reserve(out.size() + method.size() + device_id.size() + 2 * nonce.size() + 96);
  out += '\n';
  out += method;
  out += '\n';
  out += device_id;
  out += '\n';
  absl::StrAppend(&out, unix_millis, "\n", HexEncode(nonce), "\n", HexEncode(Sha256(body)));
  return out;
}

}  // namespace fedlora
