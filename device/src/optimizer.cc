#include "fedlora/device/optimizer.h"

#include <torch/types.h>
#include <torch/utils.h>

#include <cmath>

#include "absl/strings/str_cat.h"

namespace fedlora::device {

absl::StatusOr<OptimizerOptions::Kind> ParseOptimizer(const std::string& name) {
  if (name == "adamw" || name == "adam") return OptimizerOptions::Kind::kAdamW;
  if (name == "sgd") return OptimizerOptions::Kind::kSgd;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown optimizer '", name, "' (use adamw or sgd)"));
}

absl::StatusOr<OptimizerOptions::Schedule> ParseSchedule(const std::string& name) {
  if (name == "constant") return OptimizerOptions::Schedule::kConstant;
  if (name == "cosine") return OptimizerOptions::Schedule::kCosine;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown schedule '", name, "' (use constant or cosine)"));
}

Optimizer::Optimizer(std::vector<torch::Tensor> params, OptimizerOptions options, int64_t groups)
    : params_(std::move(params)), o_(options), groups_(groups) {
  for (const auto& p : params_) {
    m_.push_back(torch::zeros_like(p));
    v_.push_back(o_.kind == OptimizerOptions::Kind::kAdamW ? torch::zeros_like(p)
                                                           : torch::Tensor());
  }
}

double Optimizer::LearningRate(int64_t step) const {
  if (o_.warmup_steps > 0 && step < o_.warmup_steps) {
    return o_.lr * static_cast<double>(step + 1) / static_cast<double>(o_.warmup_steps);
  }
  if (o_.schedule == OptimizerOptions::Schedule::kCosine && o_.total_steps > o_.warmup_steps) {
    double progress = static_cast<double>(step - o_.warmup_steps) /
                      static_cast<double>(o_.total_steps - o_.warmup_steps);
    progress = std::min(std::max(progress, 0.0), 1.0);
    double floor = o_.min_lr_ratio;
    return o_.lr * (floor + (1 - floor) * 0.5 * (1 + std::cos(M_PI * progress)));
  }
  return o_.lr;
}

void Optimizer::ZeroGrad() {
  for (auto& p : params_) {
    if (p.grad().defined()) p.mutable_grad() = torch::Tensor();
  }
}

double Optimizer::Step() {
  torch::NoGradGuard no_grad;
  double max_norm = 0;
  // Per-group (or global) gradient norms and clipping.
  if (groups_ > 0) {
    torch::Tensor sq = torch::zeros({groups_}, torch::kFloat64);
    for (auto& p : params_) {
      if (!p.grad().defined()) continue;
      sq += p.grad().reshape({groups_, -1}).to(torch::kFloat64).pow(2).sum(1);
    }
    torch::Tensor norms = sq.sqrt();
    max_norm = norms.max().item<double>();
    if (o_.max_grad_norm > 0) {
      torch::Tensor factor = (o_.max_grad_norm / (norms + 1e-6)).clamp_max(1.0).to(torch::kFloat);
      for (auto& p : params_) {
        if (!p.grad().defined()) continue;
        std::vector<int64_t> shape(p.dim(), 1);
        shape[0] = groups_;
        p.mutable_grad().mul_(factor.view(shape));
      }
    }
  } else {
    double sq = 0;
    for (auto& p : params_) {
      if (p.grad().defined()) sq += p.grad().to(torch::kFloat64).pow(2).sum().item<double>();
    }
    max_norm = std::sqrt(sq);
    if (o_.max_grad_norm > 0 && max_norm > o_.max_grad_norm) {
      double factor = o_.max_grad_norm / (max_norm + 1e-6);
      for (auto& p : params_) {
        if (p.grad().defined()) p.mutable_grad().mul_(factor);
      }
    }
  }
  const double lr = LearningRate(step_);
  ++step_;
  for (size_t i = 0; i < params_.size(); ++i) {
    torch::Tensor& p = params_[i];
    if (!p.grad().defined()) continue;
    torch::Tensor g = p.grad();
    if (o_.kind == OptimizerOptions::Kind::kAdamW) {
      if (o_.weight_decay > 0) p.mul_(1 - lr * o_.weight_decay);
      m_[i].mul_(o_.beta1).add_(g, 1 - o_.beta1);
      v_[i].mul_(o_.beta2).addcmul_(g, g, 1 - o_.beta2);
      double bc1 = 1 - std::pow(o_.beta1, static_cast<double>(step_));
      double bc2 = 1 - std::pow(o_.beta2, static_cast<double>(step_));
      torch::Tensor denom = (v_[i] / bc2).sqrt_().add_(o_.eps);
      p.addcdiv_(m_[i], denom, -lr / bc1);
    } else {
      if (o_.weight_decay > 0) g = g + p * o_.weight_decay;
      if (o_.momentum > 0) {
        m_[i].mul_(o_.momentum).add_(g);
        g = m_[i];
      }
      p.add_(g, -lr);
    }
  }
  return max_norm;
}

}  // namespace fedlora::device
