// Internal: the argument checks, state rules and error messages both Store engines share
// (sqlite_store*.cc, pg_store*.cc), so the contract of store.h is written once.
#ifndef FEDLORA_COORDINATOR_SRC_STORE_CHECKS_H_
#define FEDLORA_COORDINATOR_SRC_STORE_CHECKS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "fedlora/coordinator/store.h"

namespace fedlora::coordinator::internal {

int64_t NowUnix();

// ---- Enrolment.
absl::Status CheckTokenHash(const std::string& token_sha256_hex);
absl::Status CheckNewDevice(const DeviceRecord& device);
absl::Status UnknownTokenError();
// `by` empty: the device is not known to the caller.
absl::Status TokenUsedError(const std::string& by, int64_t used_unix);
absl::Status DeviceTakenError(const std::string& device_id);
absl::Status NoDeviceError(const std::string& device_id);
absl::Status NoDeviceToRevokeError(const std::string& device_id);

// ---- Rounds.
absl::Status CheckNewRound(uint64_t round, int selected);
absl::Status RoundExistsError(uint64_t round, const std::string& state);
absl::Status RoundNotBegunError(uint64_t round);
// FAILED_PRECONDITION unless `r` is running; `action` completes "cannot ACTION round N".
absl::Status CheckRunning(const RoundRecord& r, absl::string_view action);
absl::Status CheckParticipants(uint64_t round, const std::vector<std::string>& participants);
absl::Status AlreadyChargedError(uint64_t round);
absl::Status CheckSummed(uint64_t round, int summed);
// Running and charged (an uncharged sum is never committed).
absl::Status CheckCommittable(const RoundRecord& r);
absl::Status InitialExistsError(const std::string& where, int64_t versions);
absl::Status NoAdapterError(const std::string& where);

// ---- Releases.
absl::Status CheckReleaseRecord(const ReleaseRecord& r);
// The rules of PublishRelease against every published release.
absl::Status CheckPublishable(const std::vector<ReleaseRecord>& existing,
                              const ReleaseRecord& release);
absl::Status NoReleaseError(uint64_t version);
absl::Status CheckReports(const std::vector<DeviceReleaseReport>& reports);

absl::Status EmptyMetaKeyError();
absl::Status NoMetaError(const std::string& key);

}  // namespace fedlora::coordinator::internal

#endif  // FEDLORA_COORDINATOR_SRC_STORE_CHECKS_H_
