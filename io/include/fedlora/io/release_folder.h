// Release folders on disk: creating one from a PEFT adapter (files copied under adapter/,
// hashed, manifest signed) and verifying one before anything is applied. The manifest format
// and its canonical bytes are in fedlora/common/release.h (docs/releases.md).
#ifndef FEDLORA_IO_RELEASE_FOLDER_H_
#define FEDLORA_IO_RELEASE_FOLDER_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "fedlora/common/ed25519.h"
#include "fedlora/common/release.h"

namespace fedlora::io {

struct CreateReleaseOptions {
  std::string adapter_dir;        // PEFT: adapter_config.json + adapter_model.safetensors
  std::string base_model_sha256;  // io::ModelSha256 of the base it was trained for
  uint64_t version = 0;           // >= 1
  std::string release_id;         // "" = r<version>-<8 random hex>
  std::string segment = "global";
  ReleaseProvenance provenance;
  std::string out_dir;            // must not exist or be empty
};

// Copies the adapter's files (adapter_config.json, adapter_model.safetensors, and
// fedlora_base.json when present) to <out>/adapter/, hashes them, writes the signed
// <out>/manifest.json. Nothing is left behind on failure. INVALID_ARGUMENT for a missing
// adapter file or version 0, ALREADY_EXISTS for a non-empty out dir.
absl::StatusOr<ReleaseManifest> CreateRelease(const CreateReleaseOptions& options,
                                              const Ed25519Key& key);

// Reads and parses <dir>/manifest.json (signature not checked).
absl::StatusOr<ReleaseManifest> ReadManifest(const std::string& dir);

struct VerifyReleaseOptions {
  std::string base_model_sha256;  // required: the base the device runs
  uint64_t installed_version = 0;  // 0 = nothing installed
  // A downgrade (version <= installed) is allowed only with a signed instruction from
  // installed_version to exactly this release.
  std::optional<RollbackInstruction> rollback;
  // The device's segment: a release made for another segment is refused (FAILED_PRECONDITION).
  // Empty: not checked (an operator's `release verify`).
  std::string segment;
};

// Everything a device checks before it applies a release, in this order: the manifest parses
// and names only paths inside the folder; its key is trusted and not revoked; the signature
// verifies; the base hash is the device's; the version is newer (or a signed rollback says
// so); every file exists as a regular file with the listed size and SHA-256. Errors:
// INVALID_ARGUMENT (malformed manifest, path outside the folder), UNAUTHENTICATED (unknown key,
// bad signature), PERMISSION_DENIED (revoked key), FAILED_PRECONDITION (other base, downgrade),
// DATA_LOSS (missing, truncated or altered file), each naming what and with a hint.
absl::StatusOr<ReleaseManifest> VerifyRelease(const std::string& dir, const TrustStore& trust,
                                              const VerifyReleaseOptions& options);

}  // namespace fedlora::io

#endif  // FEDLORA_IO_RELEASE_FOLDER_H_
