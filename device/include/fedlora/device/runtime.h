// A model directory loaded for use on a device: base model, tokenizer, optional adapters.
#ifndef FEDLORA_DEVICE_RUNTIME_H_
#define FEDLORA_DEVICE_RUNTIME_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/adapters/lora_adapter.h"
#include "fedlora/model/llama.h"
#include "fedlora/model/tokenizer.h"

namespace fedlora::device {

struct Runtime {
  std::unique_ptr<model::LlamaModel> model;
  std::unique_ptr<model::Tokenizer> tokenizer;
  std::vector<std::unique_ptr<adapters::LoraAdapter>> adapters;  // attached, in order
};

// Loads `model_dir` (config.json, safetensors weights, tokenizer.model) and attaches each PEFT
// adapter directory in `adapter_dirs` in turn (validated against the base first). Errors name
// the file at fault. Besides the config checks of ParseLlamaConfig, INVALID_ARGUMENT when the
// tokenizer has more pieces than `vocab_size` (fewer is fine: vocabularies are often padded)
// or when `bos_token_id` / `eos_token_id` is not one of the tokenizer's pieces.
// A compressed checkpoint (a directory with compression.json, see docs/compress.md) is loaded
// by compress::LoadCompressedModel: its projections stay packed in memory.
absl::StatusOr<Runtime> LoadRuntime(const std::string& model_dir,
                                    const std::vector<std::string>& adapter_dirs = {});

}  // namespace fedlora::device

#endif  // FEDLORA_DEVICE_RUNTIME_H_
