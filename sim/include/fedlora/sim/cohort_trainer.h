// Local training of a cohort of virtual devices over one shared base model: batched (devices
// stacked into one pass, each adapter receiving only its own gradient) or sequential (device
// by device). Both give the same adapters for the same seeds.
#ifndef FEDLORA_SIM_COHORT_TRAINER_H_
#define FEDLORA_SIM_COHORT_TRAINER_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "fedlora/adapters/lora_adapter.h"
#include "fedlora/adapters/lora_config.h"
#include "fedlora/device/trainer.h"
#include "fedlora/model/llama.h"
#include "fedlora/sim/sim_config.h"

namespace fedlora::sim {

struct CohortResult {
  std::vector<std::vector<float>> deltas;  // per device: trained adapter - start, flat
  std::vector<double> losses;              // per device: mean local loss
  double seconds = 0;
  int64_t tokens = 0;
};

// Trains every device from `start` (flat adapter of `lora`) on its own windows with its own
// seed. In batched mode devices go `max_group` at a time through adapters::StackedLora; in
// sequential mode one at a time. `workers` threads (0 = one per core) each take whole groups,
// over a shallow copy of `base` that shares its weights, with single-threaded matrix products:
// on small models this keeps every core busy (element-wise kernels included). A device's
// result does not depend on the number of workers. Adapters attached to `base` are ignored,
// unless `keep_attached` (dual adapters): then they stay, frozen, under the trained one.
// Each device needs at least options.batch_size windows (pad with RepeatWindows).
// `freeze_a` (FFA-LoRA): only the B matrices train; every A stays bit-identical to `start`.
// `starts` (FedSA-LoRA: each device its own B): one start per device instead of `start`; the
// deltas are then against each device's own start.
// The mode TrainCohort runs for `mode` on a model of `config`: kAuto becomes kBatched at a
// hidden size of kBatchedMaxHidden or less and kSequential above; the others stay. Measured
// with bench_sim (2 cores, device-rounds/s, batched against sequential in the same run): at
// hidden 128 (config b) batched was faster in every run (1.00-1.26x over fourteen); at hidden
// 256 (config a) the two were even (0.92-1.02x over fifteen), so there the simpler path runs.
inline constexpr int64_t kBatchedMaxHidden = 128;
TrainMode ResolveTrainMode(TrainMode mode, const model::LlamaConfig& config);

absl::StatusOr<CohortResult> TrainCohort(const model::LlamaModel& base,
                                         const adapters::LoraConfig& lora,
                                         const std::vector<float>& start,
                                         const std::vector<const device::TokenWindows*>& windows,
                                         const std::vector<uint64_t>& seeds,
                                         const device::TrainOptions& options, TrainMode mode,
                                         int max_group, int workers = 0, bool freeze_a = false,
                                         bool keep_attached = false,
                                         const std::vector<std::vector<float>>* starts = nullptr);

// The positions of the B matrices in a flat adapter of `adapter`'s layout (what FFA-LoRA
// shares), ascending.
std::vector<size_t> FlatBIndices(const adapters::LoraAdapter& adapter);

// Repeats rows of `w` until it has at least `min_rows` windows.
device::TokenWindows RepeatWindows(const device::TokenWindows& w, int64_t min_rows);

}  // namespace fedlora::sim

#endif  // FEDLORA_SIM_COHORT_TRAINER_H_
