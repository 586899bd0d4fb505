// Which base model an adapter was trained for. `fedlora train` records it; loading an adapter
// onto another base with the same shapes (which would run, and produce nonsense) is refused.
//
// Recorded as <adapter>/fedlora_base.json {"base_model_name_or_path": ..., "base_model_sha256":
// io::ModelSha256(base)} plus PEFT's own base_model_name_or_path in adapter_config.json (a
// sidecar file, so Hugging Face PEFT still reads adapter_config.json unchanged).
#ifndef FEDLORA_DEVICE_BASE_IDENTITY_H_
#define FEDLORA_DEVICE_BASE_IDENTITY_H_

#include <string>

#include "absl/status/status.h"

namespace fedlora::device {

// Writes the sidecar and sets base_model_name_or_path. Errors name the file.
absl::Status RecordAdapterBase(const std::string& adapter_dir, const std::string& model_dir);

// OK when the adapter records no base (e.g. made by Hugging Face PEFT) or the same one;
// FAILED_PRECONDITION naming both paths and hashes otherwise. `model_sha256` caches the
// base's hash across calls (computed on first need).
absl::Status CheckAdapterBase(const std::string& adapter_dir, const std::string& model_dir,
                              std::string* model_sha256);

}  // namespace fedlora::device

#endif  // FEDLORA_DEVICE_BASE_IDENTITY_H_
