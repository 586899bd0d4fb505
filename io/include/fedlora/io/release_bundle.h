// A release folder as one byte string, for the coordinator to store and serve and a device to
// download (docs/releases.md, "Bundle"):
//   "FLRB1\n"                                   6 bytes of magic
//   u32 count                                   files that follow (little-endian)
//   per file: u32 path length, path bytes, u64 data length, data bytes
// The files are manifest.json and every file the manifest lists, in the manifest's order. A
// bundle carries no trust of its own: a device unpacks it into a staging folder and verifies
// it there like any release folder (io::VerifyRelease) before anything is applied.
#ifndef FEDLORA_IO_RELEASE_BUNDLE_H_
#define FEDLORA_IO_RELEASE_BUNDLE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace fedlora::io {

inline constexpr uint64_t kMaxBundleBytes = uint64_t{1} << 30;  // 1 GiB
inline constexpr uint32_t kMaxBundleFiles = 64;

// Reads `release_dir`'s manifest.json and the files it lists. Errors: ReadManifest's, and
// NOT_FOUND for a listed file that is missing. Nothing is verified here.
absl::StatusOr<std::string> PackReleaseBundle(const std::string& release_dir);

// Writes the bundle's files under `out_dir` (created; must not exist or be empty).
// INVALID_ARGUMENT (and nothing left behind) for a truncated or overlong bundle, bad magic,
// too many files, a path that fails CheckReleasePath (absolute, "..", odd characters) or
// repeats, or no manifest.json; the file system's errors otherwise (RESOURCE_EXHAUSTED for a
// full disk), also with nothing left behind.
absl::Status UnpackReleaseBundle(const std::string& bundle, const std::string& out_dir);

}  // namespace fedlora::io

#endif  // FEDLORA_IO_RELEASE_BUNDLE_H_
