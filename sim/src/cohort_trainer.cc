#include "fedlora/sim/cohort_trainer.h"

#include <torch/torch.h>

#include <chrono>

#include "fedlora/adapters/lora_adapter.h"
#include "fedlora/adapters/stacked_lora.h"
#include "fedlora/common/status_macros.h"

namespace fedlora::sim {

device::TokenWindows RepeatWindows(const device::TokenWindows& w, int64_t min_rows) {
  if (w.size() == 0 || w.size() >= min_rows) return w;
  int64_t reps = (min_rows + w.size() - 1) / w.size();
  device::TokenWindows out;
  out.ids = w.ids.repeat({reps, 1});
  out.mask = w.mask.repeat({reps, 1});
  return out;
}

absl::StatusOr<CohortResult> TrainCohort(model::LlamaModel& base,
                                         const adapters::LoraConfig& lora,
                                         const std::vector<float>& start,
                                         const std::vector<const device::TokenWindows*>& windows,
                                         const std::vector<uint64_t>& seeds,
                                         const device::TrainOptions& options, TrainMode mode,
                                         int max_group) {
  auto t0 = std::chrono::steady_clock::now();
  CohortResult r;
  const size_t n = windows.size();
  r.deltas.resize(n);
  r.losses.resize(n);
  if (mode == TrainMode::kSequential) {
    FEDLORA_ASSIGN_OR_RETURN(adapters::LoraAdapter adapter,
                             adapters::LoraAdapter::Create(base.config(), lora, 0));
    FEDLORA_RETURN_IF_ERROR(adapter.Attach(base));
    adapter.SetTrainable(true);
    for (size_t i = 0; i < n; ++i) {
      absl::Status s = adapter.Unflatten(start.data(), start.size());
      if (!s.ok()) {
        adapter.Detach(base);
        return s;
      }
      device::TrainOptions o = options;
      o.seed = seeds[i];
      auto stats = device::Train(base, adapter.Parameters(), *windows[i], o);
      if (!stats.ok()) {
        adapter.Detach(base);
        return stats.status();
      }
      std::vector<float> after = adapter.Flatten();
      for (size_t j = 0; j < after.size(); ++j) after[j] -= start[j];
      r.deltas[i] = std::move(after);
      r.losses[i] = stats->mean_loss;
      r.tokens += stats->tokens;
    }
    adapter.Detach(base);
  } else {
    const size_t group = static_cast<size_t>(std::max(max_group, 1));
    for (size_t b = 0; b < n; b += group) {
      const size_t e = std::min(n, b + group);
      std::vector<std::vector<float>> flats(e - b, start);
      FEDLORA_ASSIGN_OR_RETURN(adapters::StackedLora stacked,
                               adapters::StackedLora::Create(base.config(), lora, flats));
      FEDLORA_RETURN_IF_ERROR(stacked.Attach(base));
      std::vector<device::TokenWindows> per_group;
      std::vector<uint64_t> group_seeds;
      for (size_t i = b; i < e; ++i) {
        per_group.push_back(*windows[i]);
        group_seeds.push_back(seeds[i]);
      }
      auto stats = device::TrainGrouped(base, stacked.Parameters(), per_group, group_seeds, options);
      if (!stats.ok()) {
        stacked.Detach(base);
        return stats.status();
      }
      for (size_t i = b; i < e; ++i) {
        std::vector<float> after = stacked.Flatten(static_cast<int>(i - b));
        for (size_t j = 0; j < after.size(); ++j) after[j] -= start[j];
        r.deltas[i] = std::move(after);
        r.losses[i] = stats->mean_loss;  // cohort-group mean
      }
      r.tokens += stats->tokens;
      stacked.Detach(base);
    }
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace fedlora::sim
