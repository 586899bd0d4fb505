// LoraAdapter: the LoRA tensors of one adapter for one base model, and the operations the
// trainer, the simulator and the CLI need: create, PEFT load/save, attach/detach to a
// LlamaModel, merge/unmerge into its weights, and a flat float vector view for federated
// aggregation.
//
// Flat layout (Flatten, Unflatten, AdapterDelta, ApplyDelta, StackedLora): for each layer in
// increasing order, for each projection in Proj order (q, k, v, o, gate, up, down) that is
// targeted, on layers that carry the adapter: A row-major [r, in], then B row-major [out, r].
// Example, r = 4, q/v on a 2-layer model with hidden 64 and 32-wide v: L0.q.A (256), L0.q.B
// (256), L0.v.A (256), L0.v.B (128), L1.q.A, ... 1792 floats in all.
#ifndef FEDLORA_ADAPTERS_LORA_ADAPTER_H_
#define FEDLORA_ADAPTERS_LORA_ADAPTER_H_

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fedlora/adapters/lora_config.h"
#include "fedlora/model/config.h"
#include "fedlora/model/linear.h"
#include "fedlora/model/llama.h"

namespace fedlora::adapters {

class LoraAdapter {
 public:
  // The tensors on one projection of one layer (float32, contiguous, owned by the adapter).
  struct Slot {
    int layer = 0;
    model::Proj proj = model::Proj::kQ;
    torch::Tensor A;  // [r, in]
    torch::Tensor B;  // [out, r]
  };

  // A fresh adapter for a model of `base` architecture, initialised per `config.init`,
  // deterministic for `seed`. Tensors do not require grad until SetTrainable(true).
  // INVALID_ARGUMENT if config.Check() fails or a layer index is >= base.num_hidden_layers.
  static absl::StatusOr<LoraAdapter> Create(const model::LlamaConfig& base,
                                            const LoraConfig& config, uint64_t seed);

  // Reads a PEFT adapter directory: adapter_config.json + adapter_model.safetensors (F32, F16
  // or BF16; copied into float32). Tensor names are PEFT's
  // "base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight" (".lora_A.default.weight"
  // also accepted). NOT_FOUND for a missing file; INVALID_ARGUMENT naming the file and tensor
  // for an unsupported config (see LoraConfig::FromPeftJson), an unknown tensor name, a
  // tensor for a module/layer the config does not target, a missing or duplicate tensor, or a
  // wrong shape (both shapes given). Layers: layers_to_transform, else 0..(highest seen).
  static absl::StatusOr<LoraAdapter> LoadPeft(const std::string& dir);

  // Writes adapter_config.json and adapter_model.safetensors (F32, PEFT names) into `dir`
  // (created if needed), loadable by `PeftModel.from_pretrained(base, dir)`. Files are written
  // atomically. INTERNAL/PERMISSION_DENIED etc. from the file system.
  absl::Status SavePeft(const std::string& dir) const;

  // OK if every tensor fits `base`: the layer exists, the base has that projection, A is
  // [r, in] and B is [out, r] for that weight, dtypes agree, and an adapter for "all layers"
  // covers exactly the base's layers. Otherwise INVALID_ARGUMENT naming the tensor and both
  // shapes, ending "(hint: wrong base model?)".
  absl::Status Validate(const model::LlamaModel& base) const;

  // Validates, then appends one G = 1 LoraWeights per slot to the base's Linear::loras. The
  // LoraWeights hold A.unsqueeze(0) / B.unsqueeze(0) views that share storage with this
  // adapter, so gradients reach Parameters() and optimizer/Unflatten/ApplyDelta updates are
  // seen by the model. FAILED_PRECONDITION if already attached to `base`. The model keeps the
  // tensors alive by itself; only this object knows what to Detach. Attach order = forward
  // order: several adapters on one model add up.
  absl::Status Attach(model::LlamaModel& base);

  // Removes exactly the LoraWeights this adapter attached to `base` (others stay, in order).
  // No-op when not attached.
  void Detach(model::LlamaModel& base);

  // W <- W + scaling * B A for every slot, assigning a NEW tensor to Linear::weight (the old
  // weight, possibly a read-only mmap, is never written). Validation errors as Validate;
  // FAILED_PRECONDITION if this adapter is attached to `base` (its effect would count twice).
  absl::Status Merge(model::LlamaModel& base) const;
  // W <- W - scaling * B A (undoes Merge up to float rounding). Same errors as Merge.
  absl::Status Unmerge(model::LlamaModel& base) const;

  // A and B of every slot in flat order (the adapter's own tensors, not copies).
  std::vector<torch::Tensor> Parameters() const;
  // Sets requires_grad on every A and B (and refreshes attached views accordingly).
  void SetTrainable(bool trainable);
  // Number of floats in the flat layout.
  int64_t NumParameters() const;

  const LoraConfig& config() const { return config_; }
  const std::vector<Slot>& slots() const { return slots_; }
  // scaling of the config, as applied in forward and Merge.
  double scaling() const { return config_.Scaling(); }

  // The adapter in the flat layout (see top of file).
  std::vector<float> Flatten() const;
  // Overwrites every tensor in place from `data` in the flat layout (attachments see the new
  // values). INVALID_ARGUMENT if n != NumParameters() (both sizes given).
  absl::Status Unflatten(const float* data, size_t n);

  // Deep copy (new storage, same requires_grad), not attached anywhere.
  LoraAdapter Clone() const;

  LoraAdapter(LoraAdapter&&) = default;
  LoraAdapter& operator=(LoraAdapter&&) = default;
  // Copies would silently alias tensors and attachments: use Clone().
  LoraAdapter(const LoraAdapter&) = delete;
  LoraAdapter& operator=(const LoraAdapter&) = delete;

 private:
  LoraAdapter() = default;
  friend absl::StatusOr<LoraAdapter> MakeAdapterFromSlots(LoraConfig, std::vector<Slot>);
  absl::Status AddScaledProducts(model::LlamaModel& base, double sign) const;
  void RefreshViews();

  LoraConfig config_;
  std::vector<Slot> slots_;
  // What Attach put into Linear::loras, with the slot index each came from.
  struct Attached {
    std::shared_ptr<model::LoraWeights> weights;
    size_t slot;
  };
  std::vector<Attached> attached_;
};

// after - before in the flat layout. INVALID_ARGUMENT if the configs are not
// ConfigsCompatible or any tensor shape differs.
absl::StatusOr<std::vector<float>> AdapterDelta(const LoraAdapter& after,
                                                const LoraAdapter& before);

// adapter += scale * delta (flat layout), in place. INVALID_ARGUMENT if n is not
// adapter.NumParameters() (both sizes given).
absl::Status ApplyDelta(LoraAdapter& adapter, const float* delta, size_t n, float scale = 1.0f);

// Internal: an adapter from already-checked parts (used by LoadPeft). Slots must be in flat
// order with float32 contiguous tensors.
absl::StatusOr<LoraAdapter> MakeAdapterFromSlots(LoraConfig config,
                                                 std::vector<LoraAdapter::Slot> slots);

}  // namespace fedlora::adapters

#endif  // FEDLORA_ADAPTERS_LORA_ADAPTER_H_
