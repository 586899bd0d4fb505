// A LoRA adapter baked into its base as a plain Hugging Face checkpoint, for apps that cannot
// apply adapters at run time: W' = W + scaling * B A on every adapted projection
// (scaling = alpha / r, or alpha / sqrt(r) with rsLoRA), everything else copied.
#ifndef FEDLORA_ADAPTERS_EXPORT_MERGED_H_
#define FEDLORA_ADAPTERS_EXPORT_MERGED_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "fedlora/adapters/lora_adapter.h"

namespace fedlora::adapters {

// Files copied verbatim from the base directory when present (tokenizer and generation
// settings): tokenizer.model, tokenizer.json, tokenizer_config.json, special_tokens_map.json,
// generation_config.json.
const std::vector<std::string>& MergedExportCopiedFiles();

// Loads the float checkpoint in `base_dir` (model::LoadLlamaModel), merges `adapter` into it
// and writes `out_dir` (created if needed): config.json and model.safetensors (F32, HF names;
// model::SaveLlamaModel) plus MergedExportCopiedFiles() found in `base_dir`. The result loads
// with model::LoadLlamaModel, device::LoadRuntime and transformers'
// LlamaForCausalLM.from_pretrained. Errors: those of LoadLlamaModel (NOT_FOUND, INVALID_ARGUMENT
// naming the file); INVALID_ARGUMENT when the adapter does not fit the base (names the LoRA
// tensor and the base weight with both shapes, "(hint: wrong base model?)") and when `out_dir`
// is `base_dir` (the base would be overwritten while mapped); file-system errors naming the path.
// Nothing is written to `out_dir` when the adapter is refused.
absl::Status ExportMergedHf(const std::string& base_dir, const LoraAdapter& adapter,
                            const std::string& out_dir);

}  // namespace fedlora::adapters

#endif  // FEDLORA_ADAPTERS_EXPORT_MERGED_H_
