#include "fedlora/io/release_folder.h"

#include <sys/stat.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fedlora/common/encoding.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/random.h"
#include "fedlora/common/status_macros.h"

namespace fedlora::io {
namespace {

namespace fs = std::filesystem;

// Removes a partly written folder unless disarmed.
class Cleanup {
 public:
  explicit Cleanup(std::string dir) : dir_(std::move(dir)) {}
  ~Cleanup() {
    if (!dir_.empty()) {
      std::error_code ec;
      fs::remove_all(dir_, ec);
    }
  }
  void Disarm() { dir_.clear(); }

 private:
  std::string dir_;
};

}  // namespace

absl::StatusOr<ReleaseManifest> CreateRelease(const CreateReleaseOptions& o,
                                              const Ed25519Key& key) {
  if (o.version == 0) {
    return absl::InvalidArgumentError("release: --version must be >= 1 (versions only grow)");
  }
  std::error_code ec;
  if (fs::exists(o.out_dir, ec) && !fs::is_empty(o.out_dir, ec)) {
    return absl::AlreadyExistsError(
        absl::StrCat(o.out_dir, " exists and is not empty (hint: pick a new --out)"));
  }
  std::vector<std::string> names = {"adapter_config.json", "adapter_model.safetensors"};
  for (const auto& n : names) {
    if (!fs::is_regular_file(fs::path(o.adapter_dir) / n, ec)) {
      return absl::InvalidArgumentError(absl::StrCat(
          o.adapter_dir, " has no ", n, " (hint: --adapter takes a PEFT adapter folder, e.g. "
          "the global_adapter/ that `fedlora sim` writes)"));
    }
  }
  if (fs::is_regular_file(fs::path(o.adapter_dir) / "fedlora_base.json", ec)) {
    names.push_back("fedlora_base.json");
  }
  ReleaseManifest m;
  m.version = o.version;
  m.segment = o.segment;
  m.base_model_sha256 = o.base_model_sha256;
  m.provenance = o.provenance;
  m.created = absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone());
  if (m.provenance.date.empty()) m.provenance.date = m.created;
  m.release_id = o.release_id;
  if (m.release_id.empty()) {
    SecureRandom rng;
    std::string raw(4, '\0');
    rng.Fill(reinterpret_cast<uint8_t*>(raw.data()), raw.size());
    m.release_id = absl::StrCat("r", o.version, "-", HexEncode(raw));
  }
  FEDLORA_RETURN_IF_ERROR(MakeDirs(o.out_dir + "/adapter"));
  Cleanup cleanup(o.out_dir);
  for (const auto& n : names) {
    FEDLORA_ASSIGN_OR_RETURN(std::string bytes,
                             ReadFileToString((fs::path(o.adapter_dir) / n).string()));
    const std::string rel = "adapter/" + n;
    FEDLORA_RETURN_IF_ERROR(WriteFileAtomic(o.out_dir + "/" + rel, bytes));
    m.files.push_back({rel, HexEncode(Sha256(bytes)), bytes.size()});
  }
  FEDLORA_RETURN_IF_ERROR(SignManifest(key, &m));
  FEDLORA_RETURN_IF_ERROR(
      WriteFileAtomic(o.out_dir + "/manifest.json", ManifestToJson(m).dump(2) + "\n"));
  cleanup.Disarm();
  return m;
}

absl::StatusOr<ReleaseManifest> ReadManifest(const std::string& dir) {
  auto text = ReadFileToString(dir + "/manifest.json");
  if (!text.ok()) {
    return absl::NotFoundError(absl::StrCat(dir, " has no readable manifest.json (hint: a "
                                                 "release folder is made by `fedlora release "
                                                 "create`)"));
  }
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded()) {
    return absl::InvalidArgumentError(absl::StrCat(dir, "/manifest.json is not JSON"));
  }
  return ManifestFromJson(j);
}

absl::StatusOr<ReleaseManifest> VerifyRelease(const std::string& dir, const TrustStore& trust,
                                              const VerifyReleaseOptions& o) {
  FEDLORA_ASSIGN_OR_RETURN(ReleaseManifest m, ReadManifest(dir));
  FEDLORA_RETURN_IF_ERROR(VerifyManifestSignature(m, trust));
  if (m.base_model_sha256 != o.base_model_sha256) {
    return absl::FailedPreconditionError(absl::StrCat(
        "release ", m.release_id, " was made for base model ", m.base_model_sha256.substr(0, 16),
        "..., this device runs ", o.base_model_sha256.substr(0, 16),
        "... (hint: the operator must publish a release trained for this base)"));
  }
  if (!o.segment.empty() && m.segment != o.segment) {
    return absl::FailedPreconditionError(
        absl::StrCat("release ", m.release_id, " is for segment \"", m.segment,
                     "\", this device is in \"", o.segment,
                     "\" (hint: the coordinator offered another segment's release; nothing was "
                     "applied)"));
  }
  if (o.installed_version > 0 && m.version <= o.installed_version) {
    const auto& r = o.rollback;
    if (!r) {
      return absl::FailedPreconditionError(absl::StrCat(
          "release ", m.release_id, " is version ", m.version, ", not newer than the installed ",
          o.installed_version, " (a downgrade needs the coordinator's signed rollback "
          "instruction)"));
    }
    FEDLORA_RETURN_IF_ERROR(VerifyRollbackSignature(*r, trust));
    if (r->from_version != o.installed_version || r->to_version != m.version ||
        r->to_release_id != m.release_id || r->base_model_sha256 != m.base_model_sha256) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the rollback instruction (", r->from_version, " -> ", r->to_version, ", release ",
          r->to_release_id, ") does not cover going from ", o.installed_version, " to ",
          m.version, " (", m.release_id, ")"));
    }
  }
  for (const auto& f : m.files) {
    const std::string path = dir + "/" + f.path;
    struct stat st;
    if (lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      return absl::DataLossError(absl::StrCat("release file ", f.path,
                                              " is missing or not a regular file"));
    }
    if (static_cast<uint64_t>(st.st_size) != f.bytes) {
      return absl::DataLossError(absl::StrCat("release file ", f.path, " has ", st.st_size,
                                              " bytes, the manifest says ", f.bytes,
                                              " (truncated download? fetch it again)"));
    }
    FEDLORA_ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
    if (HexEncode(Sha256(bytes)) != f.sha256) {
      return absl::DataLossError(absl::StrCat("release file ", f.path,
                                              " does not match its SHA-256 in the manifest "
                                              "(altered or corrupt; fetch it again)"));
    }
  }
  return m;
}

}  // namespace fedlora::io
