// A signed, expiring statement of how fresh a segment's releases are, after TUF's timestamp
// role: the operator signs "the newest stable release of segment S for base B is version V;
// issued at I; do not believe this after T". The coordinator serves it with every release
// answer; a device refuses an expired one, one older than the newest it has seen, and an
// answer that keeps it below V. Without it a coordinator (or whoever controls its answers)
// could freeze a fleet on an old release forever by saying "nothing new" (docs/releases.md,
// "Freshness").
//
// JSON: {"format": "fedlora-timestamp-1", "segment": "global", "newest_version": 7,
//        "base_model_sha256": "<64 hex>", "issued": 1800000000, "expires": 1800604800,
//        "signature": {"key_id": "<16 hex>", "ed25519": "<128 hex>"}}
// Signed bytes (Ed25519, each line ending in "\n"):
//   fedlora-timestamp-1
//   segment <segment>
//   newest_version <decimal>
//   base_model_sha256 <lower-case hex>
//   issued <unix seconds, decimal>
//   expires <unix seconds, decimal>
//   key_id <key_id>
#ifndef FEDLORA_COMMON_RELEASE_TIMESTAMP_H_
#define FEDLORA_COMMON_RELEASE_TIMESTAMP_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "fedlora/common/ed25519.h"
#include "fedlora/common/release.h"
#include "nlohmann/json.hpp"

namespace fedlora {

inline constexpr char kTimestampFormat[] = "fedlora-timestamp-1";

struct ReleaseTimestamp {
  std::string segment = "global";
  uint64_t newest_version = 0;  // the segment's newest stable release (0: none yet)
  std::string base_model_sha256;
  int64_t issued_unix = 0;
  int64_t expires_unix = 0;
  std::string key_id;
  std::string signature;  // 64 raw bytes once signed
};

std::string TimestampCanonicalBytes(const ReleaseTimestamp& t);
nlohmann::json TimestampToJson(const ReleaseTimestamp& t);
// INVALID_ARGUMENT naming the field for a missing or mistyped field or a wrong format.
absl::StatusOr<ReleaseTimestamp> TimestampFromJson(const nlohmann::json& j);
// Sets key_id and signature. INVALID_ARGUMENT when expires is not after issued.
absl::Status SignTimestamp(const Ed25519Key& key, ReleaseTimestamp* t);
// UNAUTHENTICATED (unsigned, unknown key, bad signature) or PERMISSION_DENIED (revoked key).
absl::Status VerifyTimestampSignature(const ReleaseTimestamp& t, const TrustStore& trust);

}  // namespace fedlora

#endif  // FEDLORA_COMMON_RELEASE_TIMESTAMP_H_
