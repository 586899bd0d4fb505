// A LoRA adapter that starts where compression stopped (LoftQ-style): per target projection,
// the top singular directions of W_float - W_compressed (compress/lora_init.h), so that the
// compressed base plus this adapter is the best rank-r approximation of the float model
// reachable through those projections. Written by `fedlora compress --lora-init-rank R` as
// <out>/lora_init/, a PEFT adapter that `fedlora train --init-adapter` and the simulator's
// model.lora_init start from. The device never needs the float weights.
#ifndef FEDLORA_DEVICE_RESIDUAL_ADAPTER_H_
#define FEDLORA_DEVICE_RESIDUAL_ADAPTER_H_

#include <string>

#include "absl/status/statusor.h"
#include "fedlora/adapters/lora_adapter.h"
#include "fedlora/model/llama.h"

namespace fedlora::device {

// `float_dir` is the float model `compressed` came from (loaded here, then freed). Errors:
// LoadRuntime's for float_dir, INVALID_ARGUMENT when the two architectures differ or the rank
// is outside 1..min(out, in), and LoraAdapter::Create's for a bad config.
absl::StatusOr<adapters::LoraAdapter> ResidualAdapter(const std::string& float_dir,
                                                      const model::LlamaModel& compressed,
                                                      const adapters::LoraConfig& config);

}  // namespace fedlora::device

#endif  // FEDLORA_DEVICE_RESIDUAL_ADAPTER_H_
