// Files that hold secrets (private keys): written with mode 0600 from the first byte, read
// only when no one but the owner can read them.
#ifndef FEDLORA_COMMON_PRIVATE_FILE_H_
#define FEDLORA_COMMON_PRIVATE_FILE_H_

#include <sys/types.h>

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace fedlora {

enum class ExistingFile { kReplace, kRefuse };

// Writes `data` to `path` with permission bits `mode` (e.g. 0600 for a key, 0644 for a
// certificate). The bytes go to a fresh temporary file in the same directory, created with
// O_CREAT|O_EXCL|O_NOFOLLOW and `mode` (then fchmod'ed to exactly `mode`, whatever the
// umask), flushed, and moved into place: rename() for kReplace, link() for kRefuse (which
// fails if `path` exists, atomically). A secret is therefore never readable by others, not
// even briefly, and a crash leaves either the old file or the complete new one.
// Fails with ALREADY_EXISTS (kRefuse and `path` exists), RESOURCE_EXHAUSTED (disk full) or
// INTERNAL (other I/O errors); the message names the path and the errno text.
absl::Status WriteFileWithMode(const std::string& path, std::string_view data, mode_t mode,
                               ExistingFile existing);

// Reads a secret file. Refuses (FAILED_PRECONDITION, with the hint "chmod 600 PATH") a file
// whose permission bits let the group or others read or write it, and anything that is not a
// regular file; the mode is checked on the opened descriptor (fstat), so the file cannot be
// swapped between check and read. NOT_FOUND if it does not exist, INTERNAL on read errors.
absl::StatusOr<std::string> ReadPrivateFile(const std::string& path);

}  // namespace fedlora

#endif  // FEDLORA_COMMON_PRIVATE_FILE_H_
