// Internal: the content-addressed blob folder of a coordinator state folder (DIR/blobs).
#ifndef FEDLORA_COORDINATOR_SRC_BLOB_DIR_H_
#define FEDLORA_COORDINATOR_SRC_BLOB_DIR_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fedlora::coordinator::internal {

// True when `s` is 64 lowercase hex characters (a SHA-256 in hex).
bool IsSha256Hex(absl::string_view s);

// Writes `bytes` durably as `blobs_dir`/<sha256hex>: temporary file, fsync, atomic rename,
// then fsync of the folder so the name survives a power loss. Returns the hex hash.
// RESOURCE_EXHAUSTED when the disk is full, INTERNAL on other I/O errors.
absl::StatusOr<std::string> WriteBlob(const std::string& blobs_dir, absl::string_view bytes);

// Reads `blobs_dir`/<sha256_hex> and checks its hash. INVALID_ARGUMENT: not a SHA-256 hex;
// NOT_FOUND: no such file; DATA_LOSS: the content's hash differs.
absl::StatusOr<std::string> ReadBlob(const std::string& blobs_dir, const std::string& sha256_hex);

// fsync of a directory (makes renames and creations in it durable). INTERNAL on failure.
absl::Status FsyncDir(const std::string& dir);

}  // namespace fedlora::coordinator::internal

#endif  // FEDLORA_COORDINATOR_SRC_BLOB_DIR_H_
