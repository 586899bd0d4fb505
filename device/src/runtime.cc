#include "fedlora/device/runtime.h"

#include <filesystem>

#include "fedlora/common/status_macros.h"
#include "fedlora/model/checkpoint.h"

namespace fedlora::device {

absl::StatusOr<Runtime> LoadRuntime(const std::string& model_dir,
                                    const std::vector<std::string>& adapter_dirs) {
  Runtime rt;
  FEDLORA_ASSIGN_OR_RETURN(rt.model, model::LoadLlamaModel(model_dir));
  std::string tok_path = (std::filesystem::path(model_dir) / "tokenizer.model").string();
  FEDLORA_ASSIGN_OR_RETURN(rt.tokenizer,
                           model::Tokenizer::Load(tok_path, rt.model->config().bos_token_id,
                                                  rt.model->config().eos_token_id));
  for (const std::string& dir : adapter_dirs) {
    FEDLORA_ASSIGN_OR_RETURN(adapters::LoraAdapter adapter, adapters::LoraAdapter::LoadPeft(dir));
    auto owned = std::make_unique<adapters::LoraAdapter>(std::move(adapter));
    FEDLORA_RETURN_IF_ERROR(owned->Attach(*rt.model));
    rt.adapters.push_back(std::move(owned));
  }
  return rt;
}

}  // namespace fedlora::device
