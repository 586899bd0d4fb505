// Staged rollout of signed releases: which release a device should run, and the operator's
// transitions (promote, halt, roll back). Pure functions over the store's ReleaseRecords; the
// gRPC service and the `fedlora release` commands persist what they return.
//
// A device's place in a rollout is RolloutBucket(device id, release id), a number in [0, 100)
// from SHA-256 of both: stable for a release (raising the percent only ever adds devices) but
// different per release, so the same devices do not always go first.
#ifndef FEDLORA_COORDINATOR_RELEASE_ROLLOUT_H_
#define FEDLORA_COORDINATOR_RELEASE_ROLLOUT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/coordinator/store.h"

namespace fedlora::coordinator {

// In [0, 100): the first 8 bytes of SHA-256("fedlora-rollout-1\n" + release_id + "\n" +
// device_id) as a big-endian integer, scaled.
double RolloutBucket(const std::string& device_id, const std::string& release_id);
inline bool InRollout(const std::string& device_id, const ReleaseRecord& r) {
  return RolloutBucket(device_id, r.release_id) < r.percent;
}

struct DeviceReleaseQuery {
  std::string device_id;
  std::string base_model_sha256;
  std::string segment = "global";
  uint64_t running_version = 0;
  uint64_t fell_back_from = 0;
};

struct ReleaseDecision {
  bool offered = false;
  ReleaseRecord release;      // when offered
  std::string rollback_json;  // when the offer is a downgrade
  std::string detail;         // why (also when nothing is offered)
};

// For the releases of the query's segment and base model:
//   stable    = the highest "complete" release;
//   candidate = the release "rolling" or "halted", if any.
// A device gets the candidate when it is rolling and the device's bucket is under its percent
// (unless the device fell back from it); a device running the candidate keeps it (also while
// halted); a device running a rolled-back release gets the stable one with that release's
// signed rollback instruction; anyone else gets the stable release if it is newer than what
// it runs. Otherwise nothing is offered.
ReleaseDecision ChooseRelease(const std::vector<ReleaseRecord>& releases,
                              const DeviceReleaseQuery& query);

// The highest "complete" release of `segment` below `version` (NOT_FOUND if none).
absl::StatusOr<ReleaseRecord> PreviousComplete(const std::vector<ReleaseRecord>& releases,
                                               const std::string& segment, uint64_t version);

// The segment's release that is rolling or halted (NOT_FOUND if none).
absl::StatusOr<ReleaseRecord> CurrentCandidate(const std::vector<ReleaseRecord>& releases,
                                               const std::string& segment);

// Raises a rolling or halted release to `percent` (in (0, 100]); 100 makes it "complete".
// FAILED_PRECONDITION for a lower percent than now (devices that have it keep it: halt or roll
// back instead), a complete or rolled-back release; INVALID_ARGUMENT for a percent outside.
absl::StatusOr<ReleaseRecord> Promote(const ReleaseRecord& r, double percent);
// Stops a rolling release from reaching more devices. FAILED_PRECONDITION unless rolling.
absl::StatusOr<ReleaseRecord> Halt(const ReleaseRecord& r);
// Marks `r` rolled back with the signed instruction `rollback_json`, which must go from r's
// version to the previous complete release of its segment (checked here; its signature is
// checked by every device). FAILED_PRECONDITION for a rolled-back release or when no earlier
// complete release exists (halt it instead); INVALID_ARGUMENT for an instruction that does not
// match.
absl::StatusOr<ReleaseRecord> RollBack(const ReleaseRecord& r,
                                       const std::vector<ReleaseRecord>& releases,
                                       const std::string& rollback_json);

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_RELEASE_ROLLOUT_H_
