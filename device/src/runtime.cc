#include "fedlora/device/runtime.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "fedlora/device/base_identity.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/compress/checkpoint.h"
#include "fedlora/model/checkpoint.h"

namespace fedlora::device {
namespace {

// The tokenizer's ids must index the model's embedding, and the config's special tokens must
// be pieces of the tokenizer; otherwise torch fails later with an index error mid-evaluation.
absl::Status CheckTokenizerFitsModel(const model::LlamaConfig& config,
                                     const model::Tokenizer& tokenizer,
                                     const std::string& config_path,
                                     const std::string& tokenizer_path) {
  const int64_t pieces = tokenizer.vocab_size();
  if (pieces > config.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        tokenizer_path, " has ", pieces, " pieces but ", config_path, " has vocab_size = ",
        config.vocab_size, ": token ids ", config.vocab_size, "..", pieces - 1,
        " would index past the embedding; allowed: at most vocab_size pieces (hint: "
        "use the tokenizer.model the model was trained with, or a model whose vocab_size "
        "covers this tokenizer)"));
  }
  for (auto [key, id] : {std::pair<const char*, int64_t>{"bos_token_id", config.bos_token_id},
                         {"eos_token_id", config.eos_token_id}}) {
    if (id < 0 || id >= pieces) {
      return absl::InvalidArgumentError(absl::StrCat(
          config_path, ": ", key, " = ", id, " is not a piece of ", tokenizer_path,
          "; allowed: 0..", pieces - 1, " (the tokenizer's ", pieces,
          " pieces) (hint: set it to the tokenizer's special token, usually <s> = 1 and "
          "</s> = 2, or use the tokenizer.model that belongs to this model)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Runtime> LoadRuntime(const std::string& model_dir,
                                    const std::vector<std::string>& adapter_dirs) {
  namespace fs = std::filesystem;
  Runtime rt;
  if (compress::IsCompressedDir(model_dir)) {
    FEDLORA_ASSIGN_OR_RETURN(rt.model, compress::LoadCompressedModel(model_dir));
  } else {
    FEDLORA_ASSIGN_OR_RETURN(rt.model, model::LoadLlamaModel(model_dir));
  }
  const model::LlamaConfig& config = rt.model->config();
  std::string tok_path = (fs::path(model_dir) / "tokenizer.model").string();
  FEDLORA_ASSIGN_OR_RETURN(
      rt.tokenizer, model::Tokenizer::Load(tok_path, config.bos_token_id, config.eos_token_id));
  FEDLORA_RETURN_IF_ERROR(CheckTokenizerFitsModel(
      config, *rt.tokenizer, (fs::path(model_dir) / "config.json").string(), tok_path));
  std::string model_sha;  // computed once, only if an adapter records its base
  for (const std::string& dir : adapter_dirs) {
    FEDLORA_RETURN_IF_ERROR(CheckAdapterBase(dir, model_dir, &model_sha));
    FEDLORA_ASSIGN_OR_RETURN(adapters::LoraAdapter adapter, adapters::LoraAdapter::LoadPeft(dir));
    auto owned = std::make_unique<adapters::LoraAdapter>(std::move(adapter));
    FEDLORA_RETURN_IF_ERROR(owned->Attach(*rt.model));
    rt.adapters.push_back(std::move(owned));
  }
  return rt;
}

}  // namespace fedlora::device
