#include "fedlora/io/release_bundle.h"

#include <filesystem>
#include <set>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/release.h"
#include "fedlora/io/release_folder.h"

namespace fedlora::io {
namespace {

namespace fs = std::filesystem;
constexpr char kMagic[] = "FLRB1\n";
constexpr size_t kMagicLen = 6;

void PutU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutU64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

class Reader {
 public:
  explicit Reader(const std::string& s) : s_(s) {}
  bool U32(uint32_t* v) { return Uint(4, v); }
  bool U64(uint64_t* v) { return Uint(8, v); }
  bool Bytes(uint64_t n, std::string* out) {
    if (n > s_.size() - pos_) return false;
    out->assign(s_, pos_, n);
    pos_ += n;
    return true;
  }
  bool done() const { return pos_ == s_.size(); }

 private:
  template <typename T>
  bool Uint(int n, T* v) {
    if (s_.size() - pos_ < static_cast<size_t>(n)) return false;
    T x = 0;
    for (int i = 0; i < n; ++i) x |= static_cast<T>(static_cast<uint8_t>(s_[pos_ + i])) << (8 * i);
    pos_ += n;
    *v = x;
    return true;
  }
  const std::string& s_;
  size_t pos_ = 0;
};

absl::Status Bad(const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat(
      "release bundle: ", why, " (hint: the download is damaged or not a fedlora release "
      "bundle; nothing was applied, fetch it again)"));
}

}  // namespace

absl::StatusOr<std::string> PackReleaseBundle(const std::string& release_dir) {
  auto manifest = ReadManifest(release_dir);
  if (!manifest.ok()) return manifest.status();
  std::vector<std::string> paths = {"manifest.json"};
  for (const ReleaseFile& f : manifest->files) paths.push_back(f.path);
  std::string out(kMagic, kMagicLen);
  PutU32(&out, static_cast<uint32_t>(paths.size()));
  for (const std::string& p : paths) {
    auto data = ReadFileToString(release_dir + "/" + p);
    if (!data.ok()) {
      return absl::NotFoundError(absl::StrCat("release bundle: ", release_dir, "/", p,
                                              " cannot be read: ", data.status().message()));
    }
    PutU32(&out, static_cast<uint32_t>(p.size()));
    out += p;
    PutU64(&out, data->size());
    out += *data;
  }
  return out;
}

absl::Status UnpackReleaseBundle(const std::string& bundle, const std::string& out_dir) {
  if (bundle.size() > kMaxBundleBytes) return Bad("larger than 1 GiB");
  if (bundle.compare(0, kMagicLen, kMagic, kMagicLen) != 0) return Bad("wrong magic");
  Reader r(bundle);
  std::string skip;
  r.Bytes(kMagicLen, &skip);
  uint32_t count = 0;
  if (!r.U32(&count)) return Bad("truncated file count");
  if (count == 0 || count > kMaxBundleFiles) {
    return Bad(absl::StrCat(count, " files (a release has 1 to ", kMaxBundleFiles, ")"));
  }
  // Parse and check everything before writing anything.
  std::vector<std::pair<std::string, std::string>> files;
  std::set<std::string> seen;
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t path_len = 0;
    uint64_t data_len = 0;
    std::string path, data;
    if (!r.U32(&path_len) || path_len > 1024 || !r.Bytes(path_len, &path) || !r.U64(&data_len) ||
        !r.Bytes(data_len, &data)) {
      return Bad(absl::StrCat("truncated at file ", i + 1, " of ", count));
    }
    if (path != "manifest.json") {
      if (absl::Status s = CheckReleasePath(path); !s.ok()) {
        return Bad(absl::StrCat("file ", i + 1, ": ", s.message()));
      }
    }
    if (!seen.insert(path).second) return Bad(absl::StrCat("'", path, "' appears twice"));
    files.emplace_back(std::move(path), std::move(data));
  }
  if (!r.done()) return Bad("bytes after the last file");
  if (!seen.count("manifest.json")) return Bad("no manifest.json");
  // Exactly the files the manifest lists, and the manifest: nothing else lands on the device.
  for (const auto& [path, data] : files) {
    if (path != "manifest.json") continue;
    auto m = ManifestFromJson(nlohmann::json::parse(data, nullptr, false));
    if (!m.ok()) return Bad(absl::StrCat("its manifest.json: ", m.status().message()));
    std::set<std::string> listed = {"manifest.json"};
    for (const ReleaseFile& f : m->files) listed.insert(f.path);
    if (listed != seen) return Bad("its files are not exactly those its manifest lists");
  }
  std::error_code ec;
  if (fs::exists(out_dir, ec) && !fs::is_empty(out_dir, ec)) {
    return absl::AlreadyExistsError(absl::StrCat("release bundle: ", out_dir, " is not empty"));
  }
  absl::Status status = MakeDirs(out_dir);
  for (const auto& [path, data] : files) {
    if (!status.ok()) break;
    const fs::path target = fs::path(out_dir) / path;
    status = MakeDirs(target.parent_path().string());
    if (status.ok()) status = WriteFileAtomic(target.string(), data);
  }
  if (!status.ok()) fs::remove_all(out_dir, ec);  // nothing left behind
  return status;
}

}  // namespace fedlora::io
