#include "fedlora/adapters/stacked_lora.h"

#include <ATen/ATen.h>

#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"
#include "slots.h"

namespace fedlora::adapters {

absl::StatusOr<StackedLora> StackedLora::Create(const model::LlamaConfig& base,
                                                const LoraConfig& config,
                                                const std::vector<std::vector<float>>& flats) {
  if (flats.empty()) return absl::InvalidArgumentError("StackedLora needs at least one group");
  auto plan = internal::PlanSlots(base, config);
  if (!plan.ok()) return plan.status();
  const int64_t r = config.rank;
  const int64_t g = static_cast<int64_t>(flats.size());
  int64_t per_group = 0;
  for (const auto& s : *plan) per_group += r * (s.in + s.out);
  for (size_t i = 0; i < flats.size(); ++i) {
    if (static_cast<int64_t>(flats[i].size()) != per_group) {
      return absl::InvalidArgumentError(absl::StrCat(
          "StackedLora: group ", i, " has ", flats[i].size(), " floats but the LoRA layout has ",
          per_group, " (hint: different LoraConfig or base model?)"));
    }
  }
  StackedLora st;
  st.config_ = config;
  st.groups_ = static_cast<int>(g);
  std::set<int> layers;
  int64_t offset = 0;
  for (const auto& s : *plan) {
    layers.insert(s.layer);
    Slot slot{s.layer, s.proj, torch::empty({g, r, s.in}), torch::empty({g, s.out, r})};
    for (torch::Tensor* t : {&slot.A, &slot.B}) {
      const int64_t n = t->size(1) * t->size(2);
      float* dst = t->data_ptr<float>();
      for (int64_t k = 0; k < g; ++k) {
        std::memcpy(dst + k * n, flats[k].data() + offset, sizeof(float) * n);
      }
      offset += n;
      t->set_requires_grad(true);
    }
    st.slots_.push_back(std::move(slot));
  }
  st.num_layers_ = static_cast<int>(layers.size());
  return st;
}

absl::Status StackedLora::Attach(model::LlamaModel& base) {
  for (const auto& s : slots_) {
    absl::Status st =
        internal::CheckSlotFits(base, s.layer, s.proj, config_.rank, s.A.sizes().slice(1),
                                s.B.sizes().slice(1), s.A.scalar_type());
    if (!st.ok()) return st;
  }
  absl::Status cov = internal::CheckCoverage(base, config_, num_layers_);
  if (!cov.ok()) return cov;
  if (internal::AnyAttached(base, attached_)) {
    return absl::FailedPreconditionError(
        "StackedLora is already attached to this model (hint: Detach it first)");
  }
  for (const auto& s : slots_) {
    auto w = std::make_shared<model::LoraWeights>();
    w->A = s.A;
    w->B = s.B;
    w->scaling = config_.Scaling();
    w->dropout = config_.dropout;
    base.layers[s.layer].Get(s.proj).loras.push_back(w);
    attached_.push_back(std::move(w));
  }
  return absl::OkStatus();
}

void StackedLora::Detach(model::LlamaModel& base) {
  std::vector<std::shared_ptr<model::LoraWeights>> keep, drop;
  for (auto& w : attached_) {
    (internal::AnyAttached(base, {w}) ? drop : keep).push_back(std::move(w));
  }
  internal::RemoveLoras(base, drop);
  attached_ = std::move(keep);  // attached to other models
}

std::vector<torch::Tensor> StackedLora::Parameters() const {
  std::vector<torch::Tensor> out;
  for (const auto& s : slots_) {
    out.push_back(s.A);
    out.push_back(s.B);
  }
  return out;
}

int64_t StackedLora::NumParametersPerGroup() const {
  int64_t n = 0;
  for (const auto& s : slots_) n += s.A[0].numel() + s.B[0].numel();
  return n;
}

std::vector<float> StackedLora::Flatten(int group) const {
  TORCH_CHECK(group >= 0 && group < groups_, "StackedLora::Flatten: group ", group, " not in [0, ",
              groups_, ")");
  std::vector<float> out(NumParametersPerGroup());
  float* p = out.data();
  for (const auto& s : slots_) {
    for (const torch::Tensor* t : {&s.A, &s.B}) {
      torch::Tensor c = (*t)[group].detach().to(torch::kFloat).contiguous();
      std::memcpy(p, c.data_ptr<float>(), sizeof(float) * c.numel());
      p += c.numel();
    }
  }
  return out;
}

}  // namespace fedlora::adapters
