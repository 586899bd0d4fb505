#include "fedlora/sim/cohort_trainer.h"

#include <torch/types.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "fedlora/adapters/lora_adapter.h"
#include "fedlora/adapters/stacked_lora.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/model/threads.h"

namespace fedlora::sim {
namespace {

// The tensors to train: all of them, or (FFA-LoRA) the B matrices only. Parameters() lists
// A, B per slot.
std::vector<torch::Tensor> Trainable(std::vector<torch::Tensor> params, bool freeze_a) {
  if (!freeze_a) return params;
  std::vector<torch::Tensor> b;
  for (size_t i = 1; i < params.size(); i += 2) b.push_back(params[i]);
  return b;
}

// Trains devices [b, e) as one group (batched) or one by one (sequential) on `model`.
absl::Status TrainGroup(model::LlamaModel& model, const adapters::LoraConfig& lora,
                        const std::vector<const std::vector<float>*>& start,
                        const std::vector<const device::TokenWindows*>& windows,
                        const std::vector<uint64_t>& seeds, const device::TrainOptions& options,
                        TrainMode mode, bool freeze_a, size_t b, size_t e, CohortResult* r,
                        std::atomic<int64_t>* tokens) {
  if (mode == TrainMode::kSequential) {
    FEDLORA_ASSIGN_OR_RETURN(adapters::LoraAdapter adapter,
                             adapters::LoraAdapter::Create(model.config(), lora, 0));
    FEDLORA_RETURN_IF_ERROR(adapter.Attach(model));
    adapter.SetTrainable(true);
    absl::Status status;
    for (size_t i = b; i < e && status.ok(); ++i) {
      status = adapter.Unflatten(start[i]->data(), start[i]->size());
      if (!status.ok()) break;
      device::TrainOptions o = options;
      o.seed = seeds[i];
      auto stats = device::Train(model, Trainable(adapter.Parameters(), freeze_a), *windows[i], o);
      if (!stats.ok()) {
        status = stats.status();
        break;
      }
      std::vector<float> after = adapter.Flatten();
      for (size_t j = 0; j < after.size(); ++j) after[j] -= (*start[i])[j];
      r->deltas[i] = std::move(after);
      r->losses[i] = stats->mean_loss;
      *tokens += stats->tokens;
    }
    adapter.Detach(model);
    return status;
  }
  std::vector<std::vector<float>> flats;
  for (size_t i = b; i < e; ++i) flats.push_back(*start[i]);
  FEDLORA_ASSIGN_OR_RETURN(adapters::StackedLora stacked,
                           adapters::StackedLora::Create(model.config(), lora, flats));
  FEDLORA_RETURN_IF_ERROR(stacked.Attach(model));
  std::vector<device::TokenWindows> per_group;
  std::vector<uint64_t> group_seeds;
  for (size_t i = b; i < e; ++i) {
    per_group.push_back(*windows[i]);
    group_seeds.push_back(seeds[i]);
  }
  auto stats = device::TrainGrouped(model, Trainable(stacked.Parameters(), freeze_a), per_group,
                                    group_seeds, options);
  if (!stats.ok()) {
    stacked.Detach(model);
    return stats.status();
  }
  for (size_t i = b; i < e; ++i) {
    std::vector<float> after = stacked.Flatten(static_cast<int>(i - b));
    for (size_t j = 0; j < after.size(); ++j) after[j] -= (*start[i])[j];
    r->deltas[i] = std::move(after);
    r->losses[i] = stats->mean_loss;  // the group's mean
  }
  *tokens += stats->tokens;
  stacked.Detach(model);
  return absl::OkStatus();
}

}  // namespace

device::TokenWindows RepeatWindows(const device::TokenWindows& w, int64_t min_rows) {
  if (w.size() == 0 || w.size() >= min_rows) return w;
  int64_t reps = (min_rows + w.size() - 1) / w.size();
  device::TokenWindows out;
  out.ids = w.ids.repeat({reps, 1});
  out.mask = w.mask.repeat({reps, 1});
  return out;
}

TrainMode ResolveTrainMode(TrainMode mode, const model::LlamaConfig& config) {
  if (mode != TrainMode::kAuto) return mode;
  return config.hidden_size <= kBatchedMaxHidden ? TrainMode::kBatched : TrainMode::kSequential;
}

absl::StatusOr<CohortResult> TrainCohort(const model::LlamaModel& base,
                                         const adapters::LoraConfig& lora,
                                         const std::vector<float>& start,
                                         const std::vector<const device::TokenWindows*>& windows,
                                         const std::vector<uint64_t>& seeds,
                                         const device::TrainOptions& options, TrainMode mode,
                                         int max_group, int workers, bool freeze_a,
                                         bool keep_attached,
                                         const std::vector<std::vector<float>>* starts) {
  auto t0 = std::chrono::steady_clock::now();
  mode = ResolveTrainMode(mode, base.config());
  CohortResult r;
  const size_t n = windows.size();
  if (starts != nullptr && starts->size() != n) {
    return absl::InvalidArgumentError("TrainCohort: one start per device");
  }
  std::vector<const std::vector<float>*> start_of(n, &start);
  for (size_t i = 0; starts != nullptr && i < n; ++i) start_of[i] = &(*starts)[i];
  r.deltas.resize(n);
  r.losses.resize(n);
  // Units of work: groups of devices (batched) or chunks of devices (sequential).
  const size_t group =
      mode == TrainMode::kBatched ? static_cast<size_t>(std::max(max_group, 1)) : 1;
  std::vector<std::pair<size_t, size_t>> units;
  for (size_t b = 0; b < n; b += group) units.emplace_back(b, std::min(n, b + group));
  int w = workers > 0 ? workers : model::NumCores();
  w = static_cast<int>(std::min<size_t>(static_cast<size_t>(std::max(w, 1)), units.size()));
  std::atomic<int64_t> tokens{0};
  std::atomic<size_t> next{0};
  std::vector<absl::Status> status(std::max(w, 1));
  auto work = [&](int id) {
    // A shallow copy: shares the frozen weights, owns its own adapter slots.
    model::LlamaModel local = base;
    if (!keep_attached) {
      for (auto& layer : local.layers) {
        for (auto& lin : layer.proj) lin.loras.clear();
      }
    }
    for (size_t u = next++; u < units.size() && status[id].ok(); u = next++) {
      status[id] = TrainGroup(local, lora, start_of, windows, seeds, options, mode, freeze_a,
                              units[u].first, units[u].second, &r, &tokens);
    }
  };
  if (w <= 1) {
    work(0);
  } else {
    model::ScopedBlasThreads single(1);
    std::vector<std::thread> threads;
    for (int i = 0; i < w; ++i) threads.emplace_back(work, i);
    for (auto& t : threads) t.join();
  }
  for (const auto& s : status) FEDLORA_RETURN_IF_ERROR(s);
  r.tokens = tokens.load();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

std::vector<size_t> FlatBIndices(const adapters::LoraAdapter& adapter) {
  std::vector<size_t> out;
  size_t offset = 0;
  for (const auto& slot : adapter.slots()) {
    offset += static_cast<size_t>(slot.A.numel());
    for (int64_t j = 0; j < slot.B.numel(); ++j) out.push_back(offset + static_cast<size_t>(j));
    offset += static_cast<size_t>(slot.B.numel());
  }
  return out;
}

}  // namespace fedlora::sim
