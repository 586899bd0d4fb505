#include "fedlora/device/base_identity.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/io/model_identity.h"
#include "nlohmann/json.hpp"

namespace fedlora::device {

absl::Status RecordAdapterBase(const std::string& adapter_dir, const std::string& model_dir) {
  FEDLORA_ASSIGN_OR_RETURN(std::string sha, io::ModelSha256(model_dir));
  std::error_code ec;
  const std::string path = std::filesystem::absolute(model_dir, ec).lexically_normal().string();
  nlohmann::json side = {{"base_model_name_or_path", path}, {"base_model_sha256", sha}};
  FEDLORA_RETURN_IF_ERROR(WriteFileAtomic(adapter_dir + "/fedlora_base.json", side.dump(2) + "\n"));
  const std::string cfg_path = adapter_dir + "/adapter_config.json";
  FEDLORA_ASSIGN_OR_RETURN(std::string text, ReadFileToString(cfg_path));
  auto cfg = nlohmann::json::parse(text, nullptr, false);
  if (cfg.is_discarded() || !cfg.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(cfg_path, " is not a JSON object"));
  }
  cfg["base_model_name_or_path"] = path;
  return WriteFileAtomic(cfg_path, cfg.dump(2) + "\n");
}

absl::Status CheckAdapterBase(const std::string& adapter_dir, const std::string& model_dir,
                              std::string* model_sha256) {
  auto text = ReadFileToString(adapter_dir + "/fedlora_base.json");
  if (!text.ok()) return absl::OkStatus();  // no record: nothing to compare
  auto side = nlohmann::json::parse(*text, nullptr, false);
  if (side.is_discarded() || !side.contains("base_model_sha256") ||
      !side["base_model_sha256"].is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat(adapter_dir, "/fedlora_base.json is damaged (hint: delete it to skip the "
                                  "base check, or retrain the adapter)"));
  }
  if (model_sha256->empty()) {
    FEDLORA_ASSIGN_OR_RETURN(*model_sha256, io::ModelSha256(model_dir));
  }
  const std::string want = side["base_model_sha256"].get<std::string>();
  if (want == *model_sha256) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "adapter ", adapter_dir, " was trained for base model ",
      side.value("base_model_name_or_path", std::string("?")), " (sha256 ", want.substr(0, 16),
      "...), not for ", model_dir, " (sha256 ", model_sha256->substr(0, 16),
      "...); its shapes may match but its outputs would be meaningless (hint: pass the --model "
      "it was trained on, or retrain it on this one)"));
}

}  // namespace fedlora::device
