#include "fedlora/device/release_install.h"

#include <algorithm>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/status_macros.h"

namespace fedlora::device {
namespace {

namespace fs = std::filesystem;

nlohmann::json ToJson(const InstalledRelease& r) {
  return {{"version", r.version}, {"release_id", r.release_id}, {"dir", r.dir}};
}

absl::StatusOr<InstalledRelease> FromJson(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("version") || !j["version"].is_number_unsigned() ||
      !j.contains("release_id") || !j["release_id"].is_string() || !j.contains("dir") ||
      !j["dir"].is_string()) {
    return absl::InvalidArgumentError("release.json: an entry lacks version, release_id or dir");
  }
  return InstalledRelease{j["version"].get<uint64_t>(), j["release_id"].get<std::string>(),
                          j["dir"].get<std::string>()};
}

absl::Status WriteState(const std::string& state_dir, const ReleaseState& s) {
  nlohmann::json j = nlohmann::json::object();
  if (s.current) j["current"] = ToJson(*s.current);
  if (s.previous) j["previous"] = ToJson(*s.previous);
  if (!s.rejected.empty()) j["rejected"] = s.rejected;
  if (!s.retired.empty()) j["retired"] = s.retired;
  return WriteFileAtomic(state_dir + "/release.json", j.dump(2) + "\n");
}

absl::Status CopyTree(const std::string& from, const ReleaseManifest& m, const std::string& to) {
  FEDLORA_RETURN_IF_ERROR(MakeDirs(to));
  for (const auto& f : m.files) {
    FEDLORA_ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(from + "/" + f.path));
    const fs::path dst = fs::path(to) / f.path;
    FEDLORA_RETURN_IF_ERROR(MakeDirs(dst.parent_path().string()));
    FEDLORA_RETURN_IF_ERROR(WriteFileAtomic(dst.string(), bytes));
  }
  FEDLORA_ASSIGN_OR_RETURN(std::string manifest, ReadFileToString(from + "/manifest.json"));
  return WriteFileAtomic(to + "/manifest.json", manifest);
}

}  // namespace

absl::StatusOr<ReleaseState> ReadReleaseState(const std::string& state_dir) {
  ReleaseState s;
  const std::string path = state_dir + "/release.json";
  std::error_code ec;
  if (!fs::exists(path, ec)) return s;
  FEDLORA_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a JSON object"));
  }
  if (j.contains("current")) {
    FEDLORA_ASSIGN_OR_RETURN(s.current, FromJson(j["current"]));
  }
  if (j.contains("previous")) {
    FEDLORA_ASSIGN_OR_RETURN(s.previous, FromJson(j["previous"]));
  }
  for (const char* key : {"rejected", "retired"}) {
    if (!j.contains(key)) continue;
    if (!j[key].is_array()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": \"", key, "\" is not a list"));
    }
    auto& list = std::string(key) == "rejected" ? s.rejected : s.retired;
    for (const auto& v : j[key]) {
      if (!v.is_number_unsigned()) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": \"", key, "\" holds a non-version"));
      }
      list.push_back(v.get<uint64_t>());
    }
  }
  return s;
}

absl::StatusOr<InstalledRelease> InstallRelease(const std::string& state_dir,
                                                const std::string& release_dir,
                                                const TrustStore& trust,
                                                const std::string& base_model_sha256,
                                                const std::optional<RollbackInstruction>& rollback,
                                                const std::string& segment) {
  FEDLORA_ASSIGN_OR_RETURN(ReleaseState state, ReadReleaseState(state_dir));
  io::VerifyReleaseOptions vo;
  vo.base_model_sha256 = base_model_sha256;
  vo.installed_version = state.current ? state.current->version : 0;
  vo.rollback = rollback;
  vo.segment = segment;
  FEDLORA_ASSIGN_OR_RETURN(ReleaseManifest m, io::VerifyRelease(release_dir, trust, vo));
  if (std::find(state.retired.begin(), state.retired.end(), m.version) != state.retired.end()) {
    return absl::FailedPreconditionError(
        absl::StrCat("release version ", m.version,
                     " was retired by a signed rollback on this device and is "
                     "not installed again (hint: the operator should publish a newer version)"));
  }
  if (std::find(state.rejected.begin(), state.rejected.end(), m.version) != state.rejected.end()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "release version ", m.version, " failed this device's health check before and is not "
        "installed again (hint: the operator should publish a newer release)"));
  }

  const std::string releases = state_dir + "/releases";
  const std::string staging = absl::StrCat(releases, "/.staging-", m.version);
  const std::string final_dir = absl::StrCat(releases, "/", m.version);
  std::error_code ec;
  fs::remove_all(staging, ec);
  absl::Status s = CopyTree(release_dir, m, staging);
  if (s.ok()) {
    // What is applied is what was checked: the copy is verified again in place.
    auto again = io::VerifyRelease(staging, trust, vo);
    s = again.status();
  }
  if (s.ok() && fs::exists(final_dir, ec)) {
    // A folder of this version from an earlier attempt or a rolled-back release: replaced.
    if (state.current && state.current->dir == final_dir) {
      s = absl::AlreadyExistsError(absl::StrCat("release version ", m.version,
                                                " is already the current one"));
    } else {
      fs::remove_all(final_dir, ec);
    }
  }
  if (s.ok()) {
    fs::rename(staging, final_dir, ec);
    if (ec) s = absl::InternalError(absl::StrCat("cannot rename ", staging, ": ", ec.message()));
    if (s.ok()) s = SyncDir(releases);  // the rename survives a power loss
  }
  if (!s.ok()) {
    fs::remove_all(staging, ec);
    return s;
  }
  InstalledRelease installed{m.version, m.release_id, final_dir};
  ReleaseState next;
  next.current = installed;
  next.previous = state.current;
  next.rejected = state.rejected;
  next.retired = state.retired;
  if (state.current && m.version < state.current->version) {  // a signed rollback (verified)
    next.retired.push_back(state.current->version);
  }
  s = WriteState(state_dir, next);
  if (!s.ok()) {
    // release.json still names the old release; the new folder is unused.
    if (!state.current || state.current->dir != final_dir) fs::remove_all(final_dir, ec);
    return s;
  }
  // Only the current and the previous release are kept.
  for (const auto& entry : fs::directory_iterator(releases, ec)) {
    const std::string p = entry.path().string();
    if (p == final_dir || (state.current && p == state.current->dir)) continue;
    fs::remove_all(entry.path(), ec);
  }
  return installed;
}

absl::StatusOr<InstalledRelease> RevertToPrevious(const std::string& state_dir) {
  FEDLORA_ASSIGN_OR_RETURN(ReleaseState state, ReadReleaseState(state_dir));
  if (!state.previous) {
    return absl::FailedPreconditionError("no previous release to go back to");
  }
  ReleaseState next;
  next.current = state.previous;
  next.previous = state.current;
  next.rejected = state.rejected;
  next.retired = state.retired;
  if (state.current) next.rejected.push_back(state.current->version);
  FEDLORA_RETURN_IF_ERROR(WriteState(state_dir, next));
  return *next.current;
}

}  // namespace fedlora::device
