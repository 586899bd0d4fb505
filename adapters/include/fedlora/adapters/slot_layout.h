// The flat layout's slots of a LoRA adapter as AdapterBlob::slots records them: (A values,
// B values) per slot, in Flatten() order. The coordinator (torch-free) maps a LoRA method's
// shared values into the flat adapter with it (fedlora/common/lora_method.h).
#ifndef FEDLORA_ADAPTERS_SLOT_LAYOUT_H_
#define FEDLORA_ADAPTERS_SLOT_LAYOUT_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "fedlora/adapters/lora_adapter.h"

namespace fedlora::adapters {

inline std::vector<std::pair<uint64_t, uint64_t>> SlotLayout(const LoraAdapter& adapter) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  for (const auto& s : adapter.slots()) {
    out.emplace_back(static_cast<uint64_t>(s.A.numel()), static_cast<uint64_t>(s.B.numel()));
  }
  return out;
}

}  // namespace fedlora::adapters

#endif  // FEDLORA_ADAPTERS_SLOT_LAYOUT_H_
