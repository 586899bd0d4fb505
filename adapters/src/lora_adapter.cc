#include "fedlora/adapters/lora_adapter.h"

#include <ATen/ATen.h>

#include <cmath>
#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"
#include "slots.h"

namespace fedlora::adapters {
namespace {

// Copies `t` (any float dtype) into dst as float32, row-major.
void CopyOut(const torch::Tensor& t, float* dst) {
  torch::Tensor c = t.detach().to(torch::kFloat).contiguous();
  std::memcpy(dst, c.data_ptr<float>(), sizeof(float) * c.numel());
}

int NumLayers(const std::vector<LoraAdapter::Slot>& slots) {
  std::set<int> layers;
  for (const auto& s : slots) layers.insert(s.layer);
  return static_cast<int>(layers.size());
}

}  // namespace

absl::StatusOr<LoraAdapter> MakeAdapterFromSlots(LoraConfig config,
                                                 std::vector<LoraAdapter::Slot> slots) {
  LoraAdapter a;
  a.config_ = std::move(config);
  a.slots_ = std::move(slots);
  return a;
}

absl::StatusOr<LoraAdapter> LoraAdapter::Create(const model::LlamaConfig& base,
                                                const LoraConfig& config, uint64_t seed) {
  auto plan = internal::PlanSlots(base, config);
  if (!plan.ok()) return plan.status();
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(seed);
  LoraAdapter a;
  a.config_ = config;
  std::sort(a.config_.targets.begin(), a.config_.targets.end());
  std::sort(a.config_.layers.begin(), a.config_.layers.end());
  const int64_t r = config.rank;
  for (const auto& s : *plan) {
    Slot slot{s.layer, s.proj, torch::zeros({r, s.in}), torch::zeros({s.out, r})};
    switch (config.init) {
      case LoraConfig::Init::kPeft: {
        const double bound = 1.0 / std::sqrt(static_cast<double>(s.in));
        slot.A.uniform_(-bound, bound, gen);
        break;
      }
      case LoraConfig::Init::kGaussian:
        slot.A.normal_(0.0, 1.0 / static_cast<double>(r), gen);
        break;
      case LoraConfig::Init::kZero:
        break;
    }
    a.slots_.push_back(std::move(slot));
  }
  return a;
}

absl::Status LoraAdapter::Validate(const model::LlamaModel& base) const {
  for (const auto& s : slots_) {
    absl::Status st = internal::CheckSlotFits(base, s.layer, s.proj, config_.rank, s.A.sizes(),
                                              s.B.sizes(), s.A.scalar_type());
    if (!st.ok()) return st;
  }
  return internal::CheckCoverage(base, config_, NumLayers(slots_));
}

void LoraAdapter::RefreshViews() {
  torch::AutoGradMode grad_mode(true);  // views must carry autograd even if made in no_grad
  for (auto& at : attached_) {
    at.weights->A = slots_[at.slot].A.unsqueeze(0);
    at.weights->B = slots_[at.slot].B.unsqueeze(0);
  }
}

absl::Status LoraAdapter::Attach(model::LlamaModel& base) {
  absl::Status st = Validate(base);
  if (!st.ok()) return st;
  std::vector<std::shared_ptr<model::LoraWeights>> mine;
  for (const auto& at : attached_) mine.push_back(at.weights);
  if (internal::AnyAttached(base, mine)) {
    return absl::FailedPreconditionError(
        "LoRA adapter is already attached to this model (hint: Detach it first)");
  }
  torch::AutoGradMode grad_mode(true);
  for (size_t i = 0; i < slots_.size(); ++i) {
    auto w = std::make_shared<model::LoraWeights>();
    w->A = slots_[i].A.unsqueeze(0);
    w->B = slots_[i].B.unsqueeze(0);
    w->scaling = config_.Scaling();
    w->dropout = config_.dropout;
    base.layers[slots_[i].layer].Get(slots_[i].proj).loras.push_back(w);
    attached_.push_back({std::move(w), i});
  }
  return absl::OkStatus();
}

void LoraAdapter::Detach(model::LlamaModel& base) {
  std::vector<Attached> keep;
  std::vector<std::shared_ptr<model::LoraWeights>> drop;
  for (auto& at : attached_) {
    if (internal::AnyAttached(base, {at.weights})) {
      drop.push_back(at.weights);
    } else {
      keep.push_back(std::move(at));  // attached to another model
    }
  }
  internal::RemoveLoras(base, drop);
  attached_ = std::move(keep);
}

absl::Status LoraAdapter::AddScaledProducts(model::LlamaModel& base, double sign) const {
  absl::Status st = Validate(base);
  if (!st.ok()) return st;
  std::vector<std::shared_ptr<model::LoraWeights>> mine;
  for (const auto& at : attached_) mine.push_back(at.weights);
  if (internal::AnyAttached(base, mine)) {
    return absl::FailedPreconditionError(
        "LoRA adapter is attached to this model; merging it too would count it twice (hint: "
        "Detach before Merge/Unmerge)");
  }
  torch::NoGradGuard no_grad;
  const double scale = sign * config_.Scaling();
  for (const auto& s : slots_) {
    torch::Tensor& w = base.layers[s.layer].Get(s.proj).weight;
    const bool requires_grad = w.requires_grad();
    torch::Tensor merged =
        at::addmm(w, s.B.to(w.scalar_type()), s.A.to(w.scalar_type()), 1.0, scale);
    w = merged.set_requires_grad(requires_grad);
  }
  return absl::OkStatus();
}

absl::Status LoraAdapter::Merge(model::LlamaModel& base) const {
  return AddScaledProducts(base, 1);
}
absl::Status LoraAdapter::Unmerge(model::LlamaModel& base) const {
  return AddScaledProducts(base, -1);
}

std::vector<torch::Tensor> LoraAdapter::Parameters() const {
  std::vector<torch::Tensor> out;
  for (const auto& s : slots_) {
    out.push_back(s.A);
    out.push_back(s.B);
  }
  return out;
}

void LoraAdapter::SetTrainable(bool trainable) {
  for (auto& s : slots_) {
    s.A.set_requires_grad(trainable);
    s.B.set_requires_grad(trainable);
  }
  RefreshViews();
}

int64_t LoraAdapter::NumParameters() const {
  int64_t n = 0;
  for (const auto& s : slots_) n += s.A.numel() + s.B.numel();
  return n;
}

std::vector<float> LoraAdapter::Flatten() const {
  std::vector<float> out(NumParameters());
  float* p = out.data();
  for (const auto& s : slots_) {
    CopyOut(s.A, p);
    p += s.A.numel();
    CopyOut(s.B, p);
    p += s.B.numel();
  }
  return out;
}

absl::Status LoraAdapter::Unflatten(const float* data, size_t n) {
  if (n != static_cast<size_t>(NumParameters())) {
    return absl::InvalidArgumentError(absl::StrCat("flat LoRA vector has ", n,
                                                   " floats but the adapter has ", NumParameters(),
                                                   " (hint: different LoraConfig or base model?)"));
  }
  torch::NoGradGuard no_grad;
  for (auto& s : slots_) {
    for (torch::Tensor* t : {&s.A, &s.B}) {
      t->copy_(torch::from_blob(const_cast<float*>(data), t->sizes(), torch::kFloat));
      data += t->numel();
    }
  }
  return absl::OkStatus();
}

LoraAdapter LoraAdapter::Clone() const {
  LoraAdapter c;
  c.config_ = config_;
  for (const auto& s : slots_) {
    c.slots_.push_back({s.layer, s.proj,
                        s.A.detach().clone().set_requires_grad(s.A.requires_grad()),
                        s.B.detach().clone().set_requires_grad(s.B.requires_grad())});
  }
  return c;
}

absl::StatusOr<std::vector<float>> AdapterDelta(const LoraAdapter& after,
                                                const LoraAdapter& before) {
  if (!ConfigsCompatible(after.config(), before.config())) {
    return absl::InvalidArgumentError(
        "AdapterDelta: the adapters have different LoRA configs (rank, alpha, targets or "
        "layers) (hint: deltas only exist between versions of one adapter)");
  }
  const auto& a = after.slots();
  const auto& b = before.slots();
  if (a.size() != b.size()) {
    return absl::InvalidArgumentError(absl::StrCat("AdapterDelta: ", a.size(), " vs ", b.size(),
                                                   " LoRA slots (hint: different base models?)"));
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].layer != b[i].layer || a[i].proj != b[i].proj ||
        !a[i].A.sizes().equals(b[i].A.sizes()) || !a[i].B.sizes().equals(b[i].B.sizes())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "AdapterDelta: tensor '", internal::PeftName(a[i].layer, a[i].proj, 'A'), "' has A ",
          internal::ShapeStr(a[i].A.sizes()), " B ", internal::ShapeStr(a[i].B.sizes()), " but '",
          internal::PeftName(b[i].layer, b[i].proj, 'A'), "' has A ",
          internal::ShapeStr(b[i].A.sizes()), " B ", internal::ShapeStr(b[i].B.sizes()),
          " (hint: different base models?)"));
    }
  }
  std::vector<float> out = after.Flatten();
  std::vector<float> base = before.Flatten();
  for (size_t i = 0; i < out.size(); ++i) out[i] -= base[i];
  return out;
}

absl::Status ApplyDelta(LoraAdapter& adapter, const float* delta, size_t n, float scale) {
  if (n != static_cast<size_t>(adapter.NumParameters())) {
    return absl::InvalidArgumentError(
        absl::StrCat("ApplyDelta: delta has ", n, " floats but the adapter has ",
                     adapter.NumParameters(), " (hint: different LoraConfig or base model?)"));
  }
  torch::NoGradGuard no_grad;
  for (torch::Tensor t : adapter.Parameters()) {
    torch::Tensor d = torch::from_blob(const_cast<float*>(delta), t.sizes(), torch::kFloat);
    t.add_(d.to(t.scalar_type()), scale);
    delta += t.numel();
  }
  return absl::OkStatus();
}

}  // namespace fedlora::adapters
