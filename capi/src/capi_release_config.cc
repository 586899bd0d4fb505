// fedlora_config's revoked release keys and release segment (include/fedlora.h).
#include "absl/strings/str_cat.h"
#include "capi_runtime.h"

namespace fedlora::capi {
namespace {

bool AllOf(const std::string& s, const char* allowed) {
  return s.find_first_not_of(allowed) == std::string::npos;
}

}  // namespace

absl::Status ApplyReleaseConfig(const fedlora_config& c, fedlora_runtime* rt) {
  if (c.revoked_release_keys != nullptr) {
    for (const char* const* k = c.revoked_release_keys; *k != nullptr; ++k) {
      const std::string id = *k;
      if (id.size() != 16 || !AllOf(id, "0123456789abcdef")) {
        return absl::InvalidArgumentError(absl::StrCat(
            "fedlora_config.revoked_release_keys: \"", id.substr(0, 32),
            "\" is not a key id (hint: 16 lower-case hex characters, the third field of "
            "KEY.pub)"));
      }
      rt->trust.Revoke(id);
    }
  }
  if (c.release_segment != nullptr) {
    const std::string segment = c.release_segment;
    if (segment.empty() || segment.size() > 64 ||
        !AllOf(segment, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")) {
      return absl::InvalidArgumentError(
          absl::StrCat("fedlora_config.release_segment \"", segment.substr(0, 80),
                       "\" is not a segment name (hint: [A-Za-z0-9._-], 1 to 64 characters)"));
    }
    rt->segment = segment;
  }
  return absl::OkStatus();
}

}  // namespace fedlora::capi
