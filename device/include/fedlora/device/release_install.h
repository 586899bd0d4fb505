// Installing a verified release on a device, atomically, keeping the previous one.
//
// <state>/releases/<version>/       the installed releases (current and previous only)
// <state>/release.json              {"current": {...}, "previous": {...}} written atomically
//
// A release is verified (io::VerifyRelease: key, signature, base hash, version, every file's
// hash), copied into <state>/releases/.staging-<version>, verified again in place (what is
// applied is what was checked), renamed to <state>/releases/<version>, and only then does
// release.json switch to it. A failure at any step (a full disk included) removes the staging
// folder and leaves release.json and the installed releases as they were.
#ifndef FEDLORA_DEVICE_RELEASE_INSTALL_H_
#define FEDLORA_DEVICE_RELEASE_INSTALL_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/common/release.h"
#include "fedlora/io/release_folder.h"

namespace fedlora::device {

struct InstalledRelease {
  uint64_t version = 0;
  std::string release_id;
  std::string dir;  // <state>/releases/<version>
};

struct ReleaseState {
  std::optional<InstalledRelease> current;
  std::optional<InstalledRelease> previous;
  std::vector<uint64_t> rejected;  // versions this device's health gate refused
  // Versions a signed rollback took this device away from: never installed again, whatever
  // the coordinator offers ("retired" in release.json).
  std::vector<uint64_t> retired;
};

// An empty state when nothing was ever installed. INVALID_ARGUMENT for a corrupt release.json.
absl::StatusOr<ReleaseState> ReadReleaseState(const std::string& state_dir);

// Errors: those of io::VerifyRelease (nothing applied), FAILED_PRECONDITION for a version the
// health gate rejected before or a signed rollback retired, for a release of another segment
// than `segment` (when not empty), and the file system's (RESOURCE_EXHAUSTED for a full disk;
// nothing applied). A downgrade by a signed rollback records the version it leaves as retired.
absl::StatusOr<InstalledRelease> InstallRelease(const std::string& state_dir,
                                                const std::string& release_dir,
                                                const TrustStore& trust,
                                                const std::string& base_model_sha256,
                                                const std::optional<RollbackInstruction>& rollback,
                                                const std::string& segment = "");

// Makes the previous release current again (the device's own fallback after a failed health
// check; no instruction needed since the device goes back to what it ran before). The release
// it leaves stays on disk as "previous" and its version is recorded as rejected: it is never
// installed again. FAILED_PRECONDITION when there is no previous release.
absl::StatusOr<InstalledRelease> RevertToPrevious(const std::string& state_dir);

}  // namespace fedlora::device

#endif  // FEDLORA_DEVICE_RELEASE_INSTALL_H_
