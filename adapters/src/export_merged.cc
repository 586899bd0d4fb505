// Merged Hugging Face checkpoint export (see export_merged.h).
#include "fedlora/adapters/export_merged.h"

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/model/checkpoint.h"

namespace fedlora::adapters {

namespace fs = std::filesystem;

const std::vector<std::string>& MergedExportCopiedFiles() {
  static const std::vector<std::string> kFiles = {
      "tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
      "generation_config.json"};
  return kFiles;
}

absl::Status ExportMergedHf(const std::string& base_dir, const LoraAdapter& adapter,
                            const std::string& out_dir) {
  std::error_code ec;
  if (fs::exists(out_dir, ec) && fs::equivalent(base_dir, out_dir, ec)) {
    return absl::InvalidArgumentError(
        absl::StrCat("hf-merged export: output directory ", out_dir, " is the base directory ",
                     base_dir, " (hint: choose a new --out; the base is read while writing)"));
  }
  FEDLORA_ASSIGN_OR_RETURN(auto model, model::LoadLlamaModel(base_dir));
  if (absl::Status st = adapter.Merge(*model); !st.ok()) {
    return absl::Status(st.code(), absl::StrCat("hf-merged export: adapter does not fit base ",
                                                base_dir, ": ", st.message()));
  }
  FEDLORA_RETURN_IF_ERROR(model::SaveLlamaModel(*model, out_dir));
  for (const std::string& name : MergedExportCopiedFiles()) {
    const fs::path src = fs::path(base_dir) / name;
    if (!fs::exists(src, ec)) continue;
    FEDLORA_ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(src.string()));
    FEDLORA_RETURN_IF_ERROR(WriteFileAtomic((fs::path(out_dir) / name).string(), bytes));
  }
  return absl::OkStatus();
}

}  // namespace fedlora::adapters
