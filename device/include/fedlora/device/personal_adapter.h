// A personal adapter beside the global one (dual adapters; docs/device.md, "Personal
// adapter"). The global adapter stays frozen; a small private LoRA adapter trains on the
// user's own text on top of it and is kept in the device's state folder. It never leaves the
// device: a round trains and sends the global adapter's delta with every other adapter
// detached (TrainGlobalDelta), so what a device sends is the same with or without one.
#ifndef FEDLORA_DEVICE_PERSONAL_ADAPTER_H_
#define FEDLORA_DEVICE_PERSONAL_ADAPTER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/adapters/lora_adapter.h"
#include "fedlora/common/random.h"
#include "fedlora/device/trainer.h"
#include "fedlora/model/llama.h"
#include "fedlora/model/tokenizer.h"

namespace fedlora::device {

// <state>/personal: the personal adapter (PEFT files).
std::string PersonalAdapterDir(const std::string& state_dir);

struct PersonalOptions {
  adapters::LoraConfig lora;  // default rank 4, alpha 8 (scaling 2), q_proj and v_proj
  TrainOptions train;         // default 20 steps of AdamW at 5e-3, batch 4, a shard per core
  int64_t seq_len = 64;
  PersonalOptions();
};

struct PersonalResult {
  adapters::LoraAdapter adapter;  // trained, detached
  TrainStats stats;
};

// Trains a fresh personal adapter (A drawn from `rng`, B = 0) on `texts` over `model` with
// `global` attached and frozen under it; `model` must have no adapter attached. The model is
// left as it was. INVALID_ARGUMENT for text too short to make a window or a global adapter that
// does not fit the model.
absl::StatusOr<PersonalResult> TrainPersonalAdapter(model::LlamaModel& model,
                                                    const model::Tokenizer& tokenizer,
                                                    adapters::LoraAdapter& global,
                                                    const std::vector<std::string>& texts,
                                                    const PersonalOptions& options,
                                                    RandomSource& rng);

// One round's local training of the global adapter: `start` (flat values of `lora`) trained
// on `texts` over the base alone. Any adapter attached to `model` (a personal adapter an app
// keeps attached for its suggestions) is detached for the duration and re-attached after, so
// the delta depends on the base, the global adapter, the text and the options only.
// `freeze_a` (FFA-LoRA) trains the B matrices only: A's delta is exactly zero.
struct GlobalDelta {
  std::vector<float> delta;  // trained - start
  TrainStats stats;
  int64_t windows = 0;
};
absl::StatusOr<GlobalDelta> TrainGlobalDelta(
    model::LlamaModel& model, const model::Tokenizer& tokenizer, const adapters::LoraConfig& lora,
    const std::vector<float>& start, const std::vector<std::string>& texts,
    const TrainOptions& options, int64_t seq_len, bool freeze_a = false);

}  // namespace fedlora::device

#endif  // FEDLORA_DEVICE_PERSONAL_ADAPTER_H_
