// The shared checks and messages of the Store engines (store_checks.h).
#include "store_checks.h"

#include <ctime>
#include <set>

#include "absl/strings/str_cat.h"
#include "blob_dir.h"

namespace fedlora::coordinator::internal {

int64_t NowUnix() { return static_cast<int64_t>(std::time(nullptr)); }

absl::Status CheckTokenHash(const std::string& h) {
  if (IsSha256Hex(h)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      "coordinator store: an enrolment token hash must be the SHA-256 of the token as 64 "
      "lowercase hex characters (hint: the store never sees raw tokens; hash them first)");
}

absl::Status CheckNewDevice(const DeviceRecord& device) {
  if (device.device_id.empty()) {
    return absl::InvalidArgumentError("coordinator store: enrolling a device with an empty id");
  }
  if (device.public_key.size() != 32) {
    return absl::InvalidArgumentError(absl::StrCat(
        "coordinator store: device ", device.device_id, " has a ", device.public_key.size(),
        "-byte public key, expected a raw 32-byte Ed25519 key"));
  }
  return absl::OkStatus();
}

absl::Status UnknownTokenError() {
  return absl::NotFoundError(
      "coordinator store: unknown enrolment token (hint: check for typos, or ask the "
      "operator for a new token)");
}

absl::Status TokenUsedError(const std::string& by, int64_t used_unix) {
  if (by.empty()) {
    return absl::AlreadyExistsError(
        "coordinator store: this enrolment token was already used; a token enrols one device "
        "only (hint: ask the operator for a new token)");
  }
  return absl::AlreadyExistsError(
      absl::StrCat("coordinator store: this enrolment token was already used (by device '", by,
                   "' at unix time ", used_unix,
                   "); a token enrols one device only (hint: ask the operator for a new token)"));
}

absl::Status DeviceTakenError(const std::string& device_id) {
  return absl::AlreadyExistsError(
      absl::StrCat("coordinator store: device id '", device_id,
                   "' is already enrolled (hint: pick another device id; the token was not used)"));
}

absl::Status NoDeviceError(const std::string& device_id) {
  return absl::NotFoundError(absl::StrCat("coordinator store: no enrolled device '", device_id,
                                          "' (hint: enrol it with a token first)"));
}

absl::Status NoDeviceToRevokeError(const std::string& device_id) {
  return absl::NotFoundError(absl::StrCat("coordinator store: cannot revoke '", device_id,
                                          "': no such enrolled device"));
}

absl::Status CheckNewRound(uint64_t round, int selected) {
  if (round == 0 || round > static_cast<uint64_t>(INT64_MAX)) {
    return absl::InvalidArgumentError(
        absl::StrCat("coordinator store: round ", round,
                     " is out of range (hint: rounds count from 1; 0 is the initial adapter)"));
  }
  if (selected < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("coordinator store: round ", round, " selects ", selected, " devices"));
  }
  return absl::OkStatus();
}

absl::Status RoundExistsError(uint64_t round, const std::string& state) {
  return absl::AlreadyExistsError(
      absl::StrCat("coordinator store: round ", round, " already exists (", state,
                   ") (hint: round numbers are never reused; continue after the highest one)"));
}

absl::Status RoundNotBegunError(uint64_t round) {
  return absl::NotFoundError(absl::StrCat("coordinator store: round ", round,
                                          " was never begun (hint: call BeginRound first)"));
}

absl::Status CheckRunning(const RoundRecord& r, absl::string_view action) {
  if (r.state == "running") return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat("coordinator store: cannot ", action, " round ", r.round, ": it is already ",
                   r.state, r.state == "aborted" ? absl::StrCat(" (", r.abort_reason, ")") : "",
                   " (hint: start a new round number)"));
}

absl::Status CheckParticipants(uint64_t round, const std::vector<std::string>& participants) {
  std::set<std::string> seen;
  for (const std::string& id : participants) {
    if (id.empty() || !seen.insert(id).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "coordinator store: charging round ", round, ": participant id '", id,
          id.empty() ? "' is empty" : "' appears twice", " (hint: list each device once)"));
    }
  }
  return absl::OkStatus();
}

absl::Status AlreadyChargedError(uint64_t round) {
  return absl::FailedPreconditionError(absl::StrCat(
      "coordinator store: round ", round, " is already charged; a round is charged exactly once"));
}

absl::Status CheckSummed(uint64_t round, int summed) {
  if (summed >= 0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("coordinator store: round ", round, " summed ", summed, " devices"));
}

absl::Status CheckCommittable(const RoundRecord& r) {
  if (absl::Status s = CheckRunning(r, "commit"); !s.ok()) return s;
  if (r.charged) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "coordinator store: refusing to commit round ", r.round,
      ": it was never charged (hint: ChargeRound must be committed before the sum is "
      "unmasked; an uncharged sum is never released)"));
}

absl::Status InitialExistsError(const std::string& where, int64_t versions) {
  return absl::AlreadyExistsError(absl::StrCat(
      "coordinator store: ", where, " already holds ", versions,
      " adapter version(s); the initial adapter is set once (hint: resume from the latest "
      "version, or start a new run in an empty state folder)"));
}

absl::Status NoAdapterError(const std::string& where) {
  return absl::NotFoundError(
      absl::StrCat("coordinator store: no adapter version in ", where,
                   " yet (hint: store the initial adapter with PutInitialAdapter)"));
}

absl::Status CheckReleaseRecord(const ReleaseRecord& r) {
  if (r.version == 0 || r.version > static_cast<uint64_t>(INT64_MAX)) {
    return absl::InvalidArgumentError(
        absl::StrCat("coordinator store: release version ", r.version, " is out of range"));
  }
  if (r.release_id.empty()) {
    return absl::InvalidArgumentError("coordinator store: a release needs an id");
  }
  if (!(r.percent >= 0 && r.percent <= 100)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "coordinator store: rollout percent ", r.percent, " is outside [0, 100]"));
  }
  return absl::OkStatus();
}

absl::Status CheckPublishable(const std::vector<ReleaseRecord>& existing,
                              const ReleaseRecord& release) {
  for (const ReleaseRecord& r : existing) {
    if (r.version == release.version || r.release_id == release.release_id) {
      return absl::AlreadyExistsError(absl::StrCat(
          "coordinator store: release version ", r.version, " (", r.release_id,
          ") is already published (hint: give the new release a higher version and its own id)"));
    }
    if (r.segment != release.segment) continue;
    if (r.version > release.version) {
      return absl::FailedPreconditionError(absl::StrCat(
          "coordinator store: segment '", release.segment, "' already has release version ",
          r.version, ", newer than ", release.version,
          " (hint: versions only grow; create the release again with a higher --version)"));
    }
    if (r.state == "rolling" || r.state == "halted") {
      return absl::FailedPreconditionError(absl::StrCat(
          "coordinator store: release version ", r.version, " of segment '", r.segment,
          "' is still ", r.state, " at ", r.percent,
          "% (hint: promote it to 100 or roll it back before publishing another)"));
    }
  }
  return absl::OkStatus();
}

absl::Status NoReleaseError(uint64_t version) {
  return absl::NotFoundError(absl::StrCat("coordinator store: no release version ", version,
                                          " (hint: `fedlora coordinator status` lists the "
                                          "published releases)"));
}

absl::Status CheckReports(const std::vector<DeviceReleaseReport>& reports) {
  for (const auto& report : reports) {
    if (report.device_id.empty()) {
      return absl::InvalidArgumentError("coordinator store: a release report needs a device id");
    }
  }
  return absl::OkStatus();
}

absl::Status EmptyMetaKeyError() {
  return absl::InvalidArgumentError("coordinator store: empty meta key");
}

absl::Status NoMetaError(const std::string& key) {
  return absl::NotFoundError(absl::StrCat("coordinator store: no meta value under '", key, "'"));
}

}  // namespace fedlora::coordinator::internal
