// Which LoRA values a federated run trains and shares (docs/coordinator.md, "LoRA method"):
//   lora   A and B train; both are shared (summed in secure aggregation).
//   ffa    FFA-LoRA (Sun et al., ICLR 2024): A stays at its shared random init everywhere; only
//          B trains and is shared (half the upload).
//   fedsa  FedSA-LoRA (Guo et al., ICLR 2025): A trains and is shared; each device trains its
//          own B and keeps it (personal, never sent); the global adapter's B stays at its init.
// Torch-free: the coordinator maps the shared vector into the flat adapter with the slot
// layout the adapter blob carries (adapter_blob.h, "slots").
#ifndef FEDLORA_COMMON_LORA_METHOD_H_
#define FEDLORA_COMMON_LORA_METHOD_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/common/adapter_blob.h"

namespace fedlora {

enum class LoraMethod { kLora, kFfa, kFedSa };

// "lora", "ffa" or "fedsa"; INVALID_ARGUMENT naming the accepted values otherwise.
absl::StatusOr<LoraMethod> ParseLoraMethod(std::string_view name);
const char* LoraMethodName(LoraMethod method);

// Positions in the flat adapter of the values the method shares, ascending (every position for
// lora). FAILED_PRECONDITION when the method needs the slot layout and the blob has none (an
// adapter written before layouts were recorded: hint to re-initialise).
absl::StatusOr<std::vector<size_t>> SharedPositions(const AdapterBlob& blob, LoraMethod method);
// Positions of the B matrices (what FedSA-LoRA keeps personal), ascending. Needs the layout.
absl::StatusOr<std::vector<size_t>> BPositions(const AdapterBlob& blob);

// out[i] = full[positions[i]].
std::vector<float> Gather(const std::vector<float>& full, const std::vector<size_t>& positions);
// full[positions[i]] = part[i]. INVALID_ARGUMENT on a size mismatch or a position out of range.
absl::Status Scatter(const std::vector<float>& part, const std::vector<size_t>& positions,
                     std::vector<float>* full);

}  // namespace fedlora

#endif  // FEDLORA_COMMON_LORA_METHOD_H_
