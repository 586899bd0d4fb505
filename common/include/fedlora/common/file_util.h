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
// flushed and renamed over `path`. On any failure (e.g. a full disk) the old file is left
// untouched, the temporary is removed and the error names the path and errno text.
absl::Status WriteFileAtomic(const std::string& path, absl::string_view data);

// Creates a directory and its parents; OK if it already exists.
absl::Status MakeDirs(const std::string& path);

}  // namespace fedlora

#endif  // FEDLORA_COMMON_FILE_UTIL_H_
