// The device's side of release freshness (common/release_timestamp.h, docs/releases.md,
// "Freshness"): the coordinator's signed timestamp is checked on every release answer, the
// newest one seen is kept in <state>/release-timestamp.json, and an answer that keeps the
// device below the signed newest version is refused.
#ifndef FEDLORA_DEVICE_RELEASE_FRESHNESS_H_
#define FEDLORA_DEVICE_RELEASE_FRESHNESS_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "fedlora/common/release.h"
#include "fedlora/common/release_timestamp.h"
#include "fedlora/device/release_install.h"

namespace fedlora::device {

struct FreshnessCheck {
  std::string state_dir;  // holds release-timestamp.json, the newest timestamp seen
  std::string segment = "global";
  std::string base_model_sha256;
  const TrustStore* trust = nullptr;
  int64_t now_unix = 0;
  // Refuse an answer without a timestamp even before one was seen (new deployments).
  bool require = false;
};

// Checks `json` (ReleaseOffer.timestamp_json) and records it as the newest seen. Returns the
// timestamp, or nullopt when there is none and none is required (a coordinator from before
// timestamps, and this device never saw one). Errors, each with what to do:
// FAILED_PRECONDITION for a missing timestamp once one was seen (or `require`), an expired
// one, one issued before the newest seen, or one for another segment or base;
// UNAUTHENTICATED / PERMISSION_DENIED for its signature; INVALID_ARGUMENT when malformed.
absl::StatusOr<std::optional<ReleaseTimestamp>> CheckReleaseTimestamp(const std::string& json,
                                                                      const FreshnessCheck& c);

// FAILED_PRECONDITION when an answer keeps the device below `t.newest_version`: nothing
// offered, or an older version, while it runs an older one. Not when the device itself refused
// that version (health gate: state.rejected) or a signed rollback retired it (state.retired).
absl::Status CheckNotWithheld(const ReleaseTimestamp& t, const ReleaseState& state, bool offered,
                              uint64_t offered_version);

}  // namespace fedlora::device

#endif  // FEDLORA_DEVICE_RELEASE_FRESHNESS_H_
