// A device's release update over the network: report the release it runs, ask the coordinator
// which one to run (staged rollout), download the bundle (resumable, hash-checked), unpack it
// into a staging folder, install it with every check of InstallRelease (key, signature, base
// hash, version or signed rollback, file hashes), run the health gate, fall back when it
// fails, and report the outcome. Only version numbers go to the coordinator.
#ifndef FEDLORA_DEVICE_RELEASE_UPDATE_H_
#define FEDLORA_DEVICE_RELEASE_UPDATE_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fedlora/common/release.h"
#include "fedlora/device/coordinator_client.h"

namespace fedlora::device {

struct ReleaseUpdateOptions {
  std::string state_dir;          // the device state folder (release.json, releases/)
  std::string base_model_sha256;  // of the base this device runs
  std::string segment = "global";
  const TrustStore* trust = nullptr;  // the release keys this device trusts (required)
  absl::Duration timeout = absl::Minutes(5);  // per call
  // Called once a release is installed, with the previous release folder ("" for none) and
  // the new one; false means "worse: go back". Unset: no gate.
  std::function<absl::StatusOr<bool>(const std::string& previous_dir,
                                     const std::string& new_dir)>
      health_gate;
  // Release freshness (release_freshness.h): the clock the signed timestamp is checked
  // against (0: the system clock), and whether an answer without one is refused even before
  // this device has seen one.
  int64_t now_unix = 0;
  bool require_timestamp = false;
};

struct ReleaseUpdateResult {
  // "kept" (nothing offered), "installed", "rolled back" (a signed downgrade), "fell back" (the
  // health gate refused the new release; the previous one runs again).
  std::string action;
  uint64_t offered_version = 0;
  uint64_t running_version = 0;
  uint64_t previous_version = 0;
  std::string detail;  // the coordinator's reason for its offer
};

// Errors: the coordinator's (transient ones worth a retry, see IsTransient), the download's
// DATA_LOSS (partial file discarded), the bundle's INVALID_ARGUMENT, and InstallRelease's (a
// bad signature, an unknown or revoked key, another base, a downgrade without a signed
// rollback, a full disk): in each case nothing is applied and the running release stays.
absl::StatusOr<ReleaseUpdateResult> UpdateRelease(CoordinatorClient& client,
                                                  const ReleaseUpdateOptions& options);

}  // namespace fedlora::device

#endif  // FEDLORA_DEVICE_RELEASE_UPDATE_H_
