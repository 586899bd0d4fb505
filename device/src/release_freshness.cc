#include "fedlora/device/release_freshness.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/status_macros.h"

namespace fedlora::device {
namespace {

std::string SeenPath(const std::string& state_dir) { return state_dir + "/release-timestamp.json"; }

// The newest timestamp this device accepted, if any (written by this file only).
absl::StatusOr<std::optional<ReleaseTimestamp>> ReadSeen(const std::string& state_dir) {
  auto text = ReadFileToString(SeenPath(state_dir));
  if (absl::IsNotFound(text.status())) return std::optional<ReleaseTimestamp>();
  if (!text.ok()) return text.status();
  auto j = nlohmann::json::parse(*text, nullptr, false);
  auto t = TimestampFromJson(j);
  if (!t.ok()) {
    return absl::DataLossError(absl::StrCat(SeenPath(state_dir),
                                            " is damaged: ", t.status().message(),
                                            " (hint: remove it; the next answer is re-checked)"));
  }
  return std::optional<ReleaseTimestamp>(*t);
}

}  // namespace

absl::StatusOr<std::optional<ReleaseTimestamp>> CheckReleaseTimestamp(const std::string& json,
                                                                      const FreshnessCheck& c) {
  if (c.trust == nullptr) return absl::InvalidArgumentError("release timestamp: no trust store");
  FEDLORA_ASSIGN_OR_RETURN(std::optional<ReleaseTimestamp> seen, ReadSeen(c.state_dir));
  if (json.empty()) {
    if (!seen && !c.require) return std::optional<ReleaseTimestamp>();
    return absl::FailedPreconditionError(
        "the coordinator's release answer carries no signed timestamp, but this device requires "
        "one (it saw one before): nothing says its answer is current (hint: the operator must "
        "sign one with `fedlora release timestamp`; nothing was installed)");
  }
  FEDLORA_ASSIGN_OR_RETURN(ReleaseTimestamp t,
                           TimestampFromJson(nlohmann::json::parse(json, nullptr, false)));
  FEDLORA_RETURN_IF_ERROR(VerifyTimestampSignature(t, *c.trust));
  if (t.segment != c.segment || t.base_model_sha256 != c.base_model_sha256) {
    return absl::FailedPreconditionError(
        absl::StrCat("the release timestamp is for segment \"", t.segment, "\" and base ",
                     t.base_model_sha256.substr(0, 16), "..., this device is in \"", c.segment,
                     "\" on ", c.base_model_sha256.substr(0, 16),
                     "... (hint: the coordinator served another "
                     "segment's timestamp; nothing was installed)"));
  }
  if (c.now_unix >= t.expires_unix) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the release timestamp is stale: it expired ", c.now_unix - t.expires_unix,
        " s ago (issued at unix ", t.issued_unix, ", expiring at ", t.expires_unix,
        "), so the coordinator's answer may hide a newer release (hint: the operator must "
        "re-sign it with `fedlora release timestamp`, or check the device's clock; nothing was "
        "installed)"));
  }
  if (seen && t.issued_unix < seen->issued_unix) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the release timestamp (issued at unix ", t.issued_unix,
        ") is older than one this device saw before (issued at unix ", seen->issued_unix,
        "): a replayed answer (hint: the coordinator serves an outdated timestamp; nothing was "
        "installed)"));
  }
  if (!seen || t.issued_unix > seen->issued_unix) {
    FEDLORA_RETURN_IF_ERROR(WriteFileAtomic(SeenPath(c.state_dir), TimestampToJson(t).dump()));
  }
  return std::optional<ReleaseTimestamp>(t);
}

absl::Status CheckNotWithheld(const ReleaseTimestamp& t, const ReleaseState& state, bool offered,
                              uint64_t offered_version) {
  const uint64_t running = state.current ? state.current->version : 0;
  const uint64_t v = t.newest_version;
  auto in = [v](const std::vector<uint64_t>& list) {
    return std::find(list.begin(), list.end(), v) != list.end();
  };
  if (v <= running || in(state.rejected) || in(state.retired)) return absl::OkStatus();
  if (offered && offered_version >= v) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "the coordinator keeps this device on ", running == 0 ? "no release" : "version ",
      running == 0 ? "" : std::to_string(running), " (",
      offered ? absl::StrCat("offering version ", offered_version) : "offering nothing",
      ") although the operator signed version ", v, " as the newest of segment \"", t.segment,
      "\" (hint: a coordinator freezing the fleet; report it to the operator)"));
}

}  // namespace fedlora::device
