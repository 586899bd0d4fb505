// Signed adapter releases: the manifest, its canonical bytes, release keys and their trust
// store, and signed rollback instructions. Torch-free: the coordinator serves releases, devices
// verify them, the CLI creates them.
//
// A release folder holds the adapter files (PEFT layout under adapter/) and manifest.json:
//   {"format": "fedlora-release-1", "release_id": "...", "version": N, "segment": "global",
//    "base_model_sha256": "<hex>", "created": "<RFC 3339 UTC>",
//    "provenance": {"rounds": R, "epsilon": E, "delta": D, "date": "...",
//                   "epsilon_coordinator": EC},   (optional: a number, or "unbounded")
//    "files": [{"path": "adapter/adapter_config.json", "sha256": "<hex>", "bytes": B}, ...],
//    "signature": {"key_id": "<16 hex>", "ed25519": "<128 hex>"}}
//
// The signature is Ed25519 (RFC 8032, no pre-hash) over ReleaseCanonicalBytes: UTF-8 lines,
// each ending in "\n", in this order:
//   fedlora-release-1
//   release_id <release_id>
//   version <decimal>
//   segment <segment>
//   base_model_sha256 <lower-case hex>
//   created <created>
//   provenance <rounds decimal> <epsilon %.17g> <delta %.17g> <date>
//   provenance_coordinator <epsilon_coordinator %.17g, or "unbounded">   (only when set)
//   key_id <key_id>
//   file <sha256 lower-case hex> <bytes decimal> <path>      (one per file, sorted by path)
// A key id is the lower-case hex of the first 8 bytes of SHA-256(raw 32-byte public key).
// Rollback instructions are signed the same way over RollbackCanonicalBytes.
#ifndef FEDLORA_COMMON_RELEASE_H_
#define FEDLORA_COMMON_RELEASE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/common/ed25519.h"
#include "nlohmann/json.hpp"

namespace fedlora {

inline constexpr char kReleaseFormat[] = "fedlora-release-1";
inline constexpr char kRollbackFormat[] = "fedlora-rollback-1";

struct ReleaseFile {
  std::string path;    // relative, '/'-separated, inside the release folder
  std::string sha256;  // lower-case hex
  uint64_t bytes = 0;
};

// The two epsilons of the run that made the release (docs/privacy.md, "Threat model"), both at
// `delta`: `epsilon` holds against observers of released adapters (amplified by sampling);
// `epsilon_coordinator`, when known, against the coordinator itself (the worst device, no
// amplification; +infinity = unbounded, e.g. central DP).
struct ReleaseProvenance {
  int64_t rounds = 0;
  double epsilon = 0;
  double delta = 0;
  std::string date;
  std::optional<double> epsilon_coordinator;
};

struct ReleaseManifest {
  std::string release_id;
  uint64_t version = 0;
  std::string segment = "global";
  std::string base_model_sha256;
  std::string created;
  ReleaseProvenance provenance;
  std::vector<ReleaseFile> files;
  std::string key_id;
  std::string signature;  // 64 raw bytes once signed
};

// A coordinator's instruction to go back from `from_version` to the older `to_version`.
struct RollbackInstruction {
  uint64_t from_version = 0;
  uint64_t to_version = 0;
  std::string to_release_id;
  std::string base_model_sha256;
  std::string created;
  std::string key_id;
  std::string signature;
};

std::string KeyId(std::string_view public_raw);
std::string ReleaseCanonicalBytes(const ReleaseManifest& m);
std::string RollbackCanonicalBytes(const RollbackInstruction& r);

// The path rule every manifest path obeys: relative, no "." or ".." component, no empty
// component, characters [A-Za-z0-9._-/] only. INVALID_ARGUMENT naming the path otherwise.
absl::Status CheckReleasePath(const std::string& path);

nlohmann::json ManifestToJson(const ReleaseManifest& m);
// INVALID_ARGUMENT naming the field for a missing or mistyped field, a wrong format string, a
// path outside the folder, a duplicate path, or a malformed hash.
absl::StatusOr<ReleaseManifest> ManifestFromJson(const nlohmann::json& j);
nlohmann::json RollbackToJson(const RollbackInstruction& r);
absl::StatusOr<RollbackInstruction> RollbackFromJson(const nlohmann::json& j);

// Sets key_id and signature.
absl::Status SignManifest(const Ed25519Key& key, ReleaseManifest* m);
absl::Status SignRollback(const Ed25519Key& key, RollbackInstruction* r);

// Public key files (KEY.pub): one line "ed25519 <64 hex> <key id>".
std::string PublicKeyFileText(std::string_view public_raw);
// INVALID_ARGUMENT (naming the file) for anything else, NOT_FOUND for a missing file.
absl::StatusOr<std::string> ReadPublicKeyFile(const std::string& path);

// The release keys a device trusts: several may be active at once (rotation: old and new
// during a change-over); a revoked key id is refused even if its public key is listed.
class TrustStore {
 public:
  void Add(std::string public_raw);
  void Revoke(const std::string& key_id);
  // Adds every KEY.pub in `paths`.
  absl::Status AddFiles(const std::vector<std::string>& paths);
  bool empty() const { return keys_.empty(); }
  // OK with the public key; UNAUTHENTICATED for an unknown key id, PERMISSION_DENIED for a
  // revoked one (each with a hint).
  absl::StatusOr<std::string> Find(const std::string& key_id) const;

 private:
  std::map<std::string, std::string> keys_;  // key id -> raw public key
  std::vector<std::string> revoked_;
};

// Checks a manifest's signature: key trusted and not revoked, signature valid.
absl::Status VerifyManifestSignature(const ReleaseManifest& m, const TrustStore& trust);
absl::Status VerifyRollbackSignature(const RollbackInstruction& r, const TrustStore& trust);

}  // namespace fedlora

#endif  // FEDLORA_COMMON_RELEASE_H_
