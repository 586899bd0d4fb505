// Loading and saving Hugging Face model directories (config.json + safetensors).
#ifndef FEDLORA_MODEL_CHECKPOINT_H_
#define FEDLORA_MODEL_CHECKPOINT_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fedlora/model/llama.h"

namespace fedlora::model {

struct LoadOptions {
  // When false (default), F32 tensors that are suitably aligned are used in place from the
  // read-only file mapping (no copy). Set true when the base weights will be written in place
  // (e.g. full-parameter training).
  bool writable = false;
};

// Loads `dir`: config.json plus model.safetensors, or the shards listed in
// model.safetensors.index.json. F16 and BF16 are upcast to F32. Errors name the file and
// tensor: NOT_FOUND (no config or weights), INVALID_ARGUMENT for a config.json ParseLlamaConfig
// refuses, a malformed file, a tensor the model needs that is missing, or a shape that does not
// match the config (both shapes given). `num_hidden_layers` beyond the layers in the weights and
// embedding / first q_proj shapes are checked before the model is allocated.
absl::StatusOr<std::unique_ptr<LlamaModel>> LoadLlamaModel(const std::string& dir,
                                                           const LoadOptions& options = {});

// Writes config.json and model.safetensors (F32) into `dir` (created if needed), in a layout
// Hugging Face transformers loads with `LlamaForCausalLM.from_pretrained(dir)`. Compressed
// (frozen) projections are expanded and written as float32.
absl::Status SaveLlamaModel(const LlamaModel& model, const std::string& dir);

// OK iff every entry of the float tensor `t` is finite. Otherwise INVALID_ARGUMENT naming
// `file`, the tensor `name`, how many entries are NaN/Inf and the first one's index, with a
// hint. Used on every weight a model or adapter loads, so NaN never reaches a forward pass.
absl::Status CheckFiniteWeights(const torch::Tensor& t, const std::string& file,
                                const std::string& name);

}  // namespace fedlora::model

#endif  // FEDLORA_MODEL_CHECKPOINT_H_
