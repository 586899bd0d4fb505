// Small, careful file helpers: whole-file reads and crash-safe writes.
#ifndef FEDLORA_COMMON_FILE_UTIL_H_
#define FEDLORA_COMMON_FILE_UTIL_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fedlora {

// Reads a whole file. NOT_FOUND if it does not exist, INTERNAL on read errors.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// Writes `data` to `path` atomically: a temporary file in the same directory is written,
// flushed and renamed over `path`, and the directory is flushed (SyncParentDir) so that the
// rename survives a power loss. On any failure (e.g. a full disk) the old file is left
// untouched, the temporary is removed and the error names the path and errno text.
absl::Status WriteFileAtomic(const std::string& path, absl::string_view data);

// Flushes a directory (fsync on the directory itself) so that the entries created, renamed or
// removed in it are durable: without it a crash can lose a rename although the file's data
// was synced. INTERNAL naming the directory and the errno text on failure.
absl::Status SyncDir(const std::string& dir);
// SyncDir of the directory that holds `path` ("." for a bare name).
absl::Status SyncParentDir(const std::string& path);

// Creates a directory and its parents; OK if it already exists.
absl::Status MakeDirs(const std::string& path);

}  // namespace fedlora

#endif  // FEDLORA_COMMON_FILE_UTIL_H_
