// The identity of a base model directory: a SHA-256 over the files that define its behaviour,
// so that a device, a coordinator and an adapter can tell whether they mean the same base.
//
// Covered: config.json, tokenizer.model and every *.safetensors / *.json weight-index file in
// the directory (not in sub-folders), in byte order of their names; for each file the hash
// takes its name, a NUL byte, its size as 8 bytes little-endian, then its contents.
#ifndef FEDLORA_IO_MODEL_IDENTITY_H_
#define FEDLORA_IO_MODEL_IDENTITY_H_

#include <string>

#include "absl/status/statusor.h"

namespace fedlora::io {

// Lower-case hex SHA-256 (64 characters). NOT_FOUND if `dir` has no config.json; errors name
// the file that could not be read.
absl::StatusOr<std::string> ModelSha256(const std::string& dir);

}  // namespace fedlora::io

#endif  // FEDLORA_IO_MODEL_IDENTITY_H_
