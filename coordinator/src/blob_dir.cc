#include "blob_dir.h"

#include <fcntl.h>
#include <openssl/sha.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "fedlora/common/encoding.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/coordinator/store.h"

namespace fedlora::coordinator {

std::string Sha256Hex(std::string_view bytes) { return HexEncode(Sha256(bytes)); }

namespace internal {

bool IsSha256Hex(absl::string_view s) {
  if (s.size() != 2 * SHA256_DIGEST_LENGTH) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

absl::Status FsyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("coordinator store: opening folder '", dir,
                                            "' to flush it failed: ", std::strerror(errno)));
  }
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) {
    return absl::InternalError(absl::StrCat("coordinator store: flushing folder '", dir,
                                            "' failed: ", std::strerror(err)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> WriteBlob(const std::string& blobs_dir, absl::string_view bytes) {
  std::string hex = Sha256Hex(std::string_view(bytes.data(), bytes.size()));
  std::string path = absl::StrCat(blobs_dir, "/", hex);
  absl::Status s = WriteFileAtomic(path, bytes);
  if (absl::IsResourceExhausted(s)) {
    return absl::ResourceExhaustedError(absl::StrCat("coordinator store: ", s.message(),
                                                     ": disk full: free space under ", blobs_dir,
                                                     " and restart; nothing committed was lost"));
  }
  if (!s.ok()) {
    return absl::InternalError(absl::StrCat("coordinator store: writing blob: ", s.message(),
                                            " (hint: check the state folder's permissions)"));
  }
  FEDLORA_RETURN_IF_ERROR(FsyncDir(blobs_dir));
  return hex;
}

absl::StatusOr<std::string> ReadBlob(const std::string& blobs_dir, const std::string& sha256_hex) {
  if (!IsSha256Hex(sha256_hex)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "coordinator store: blob name '", absl::CHexEscape(sha256_hex.substr(0, 80)),
        "' is not a SHA-256 in hex (hint: 64 lowercase hex characters, as listed by the "
        "adapter versions)"));
  }
  std::string path = absl::StrCat(blobs_dir, "/", sha256_hex);
  absl::StatusOr<std::string> data = ReadFileToString(path);
  if (!data.ok()) {
    if (::access(path.c_str(), F_OK) != 0) {
      return absl::NotFoundError(absl::StrCat(
          "coordinator store: blob ", sha256_hex, " is missing from ", blobs_dir,
          " (hint: the state folder was copied incompletely or the file was deleted; restore "
          "it from a backup)"));
    }
    return absl::InternalError(
        absl::StrCat("coordinator store: reading blob: ", data.status().message()));
  }
  std::string actual = Sha256Hex(*data);
  if (actual != sha256_hex) {
    return absl::DataLossError(absl::StrCat(
        "coordinator store: blob file ", path, " has SHA-256 ", actual, ", not the ", sha256_hex,
        " its name promises: it was modified or corrupted (hint: "
        "restore it from a backup; the database still records the expected hash)"));
  }
  return data;
}

}  // namespace internal
}  // namespace fedlora::coordinator
