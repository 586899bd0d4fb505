#include "fedlora/device/release_update.h"

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <optional>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "fedlora/common/file_util.h"
#include "fedlora/device/release_freshness.h"
#include "fedlora/device/release_install.h"
#include "fedlora/io/release_bundle.h"

namespace fedlora::device {
namespace {

namespace fs = std::filesystem;

v1::ReleaseRequest Request(const ReleaseUpdateOptions& o, const ReleaseState& state) {
  v1::ReleaseRequest req;
  req.set_base_model_sha256(o.base_model_sha256);
  req.set_segment(o.segment);
  req.set_running_version(state.current ? state.current->version : 0);
  uint64_t fell_back = 0;
  for (uint64_t v : state.rejected) fell_back = std::max(fell_back, v);
  req.set_fell_back_from(fell_back);
  return req;
}

}  // namespace

absl::StatusOr<ReleaseUpdateResult> UpdateRelease(CoordinatorClient& client,
                                                  const ReleaseUpdateOptions& o) {
  if (o.trust == nullptr || o.trust->empty()) {
    return absl::InvalidArgumentError(
        "release update: no trusted release key (hint: pass the operator's KEY.pub)");
  }
  auto state = ReadReleaseState(o.state_dir);
  if (!state.ok()) return state.status();
  auto offer = client.GetRelease(Request(o, *state), o.timeout);
  if (!offer.ok()) return offer.status();
  // Is the answer current? Checked before anything is downloaded (release_freshness.h).
  FreshnessCheck fresh;
  fresh.state_dir = o.state_dir;
  fresh.segment = o.segment;
  fresh.base_model_sha256 = o.base_model_sha256;
  fresh.trust = o.trust;
  fresh.now_unix = o.now_unix != 0 ? o.now_unix : static_cast<int64_t>(std::time(nullptr));
  fresh.require = o.require_timestamp;
  auto stamp = CheckReleaseTimestamp(offer->timestamp_json(), fresh);
  if (!stamp.ok()) return stamp.status();
  if (*stamp) {
    auto held = CheckNotWithheld(**stamp, *state, offer->offered(), offer->version());
    if (!held.ok()) return held;
  }
  ReleaseUpdateResult result;
  result.detail = offer->detail();
  result.running_version = state->current ? state->current->version : 0;
  if (!offer->offered()) {
    result.action = "kept";
    return result;
  }
  result.offered_version = offer->version();
  std::optional<RollbackInstruction> rollback;
  if (!offer->rollback_json().empty()) {
    auto r = RollbackFromJson(nlohmann::json::parse(offer->rollback_json(), nullptr, false));
    if (!r.ok()) return r.status();
    rollback = *r;
  }
  const std::string downloads = o.state_dir + "/downloads";
  if (auto s = MakeDirs(downloads); !s.ok()) return s;
  auto bundle = client.DownloadRelease(
      offer->version(), offer->bundle_sha256(),
      absl::StrCat(downloads, "/release-", offer->version(), ".partial"), o.timeout);
  if (!bundle.ok()) return bundle.status();
  const std::string staging = absl::StrCat(downloads, "/release-", offer->version());
  std::error_code ec;
  fs::remove_all(staging, ec);
  absl::Status unpacked = io::UnpackReleaseBundle(*bundle, staging);
  absl::StatusOr<InstalledRelease> installed =
      unpacked.ok()
          ? InstallRelease(o.state_dir, staging, *o.trust, o.base_model_sha256, rollback, o.segment)
          : absl::StatusOr<InstalledRelease>(unpacked);
  fs::remove_all(staging, ec);
  if (!installed.ok()) return installed.status();
  result.previous_version = result.running_version;
  result.running_version = installed->version;
  result.action = rollback ? "rolled back" : "installed";
  if (o.health_gate && state->current) {
    auto healthy = o.health_gate(state->current->dir, installed->dir);
    if (!healthy.ok()) return healthy.status();
    if (!*healthy) {
      auto back = RevertToPrevious(o.state_dir);
      if (!back.ok()) return back.status();
      result.action = "fell back";
      result.running_version = back->version;
    }
  }
  // Report what runs now (and what the gate refused): the answer should be "keep".
  auto after = ReadReleaseState(o.state_dir);
  if (!after.ok()) return after.status();
  auto ack = client.GetRelease(Request(o, *after), o.timeout);
  if (!ack.ok()) return ack.status();
  return result;
}

}  // namespace fedlora::device
