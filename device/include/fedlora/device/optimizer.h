// AdamW and SGD over a list of tensors, with learning-rate schedules and gradient-norm
// clipping. Parameters may carry a leading "group" dimension (batched multi-device training):
// clipping is then per group, so each group's update equals what it would get on its own.
#ifndef FEDLORA_DEVICE_OPTIMIZER_H_
#define FEDLORA_DEVICE_OPTIMIZER_H_

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace fedlora::device {

struct OptimizerOptions {
  enum class Kind { kAdamW, kSgd } kind = Kind::kAdamW;
  double lr = 1e-3;
  double weight_decay = 0.0;  // decoupled (AdamW); L2 for SGD
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double momentum = 0.0;  // SGD
  enum class Schedule { kConstant, kCosine } schedule = Schedule::kConstant;
  int64_t warmup_steps = 0;
  int64_t total_steps = 0;     // for cosine decay
  double min_lr_ratio = 0.0;   // cosine floor as a fraction of lr
  double max_grad_norm = 0.0;  // 0: no clipping
};

absl::StatusOr<OptimizerOptions::Kind> ParseOptimizer(const std::string& name);  // adamw|sgd
absl::StatusOr<OptimizerOptions::Schedule> ParseSchedule(
    const std::string& name);  // constant|cosine

class Optimizer {
 public:
  // `groups` = 0: plain parameters; > 0: every parameter's dim 0 has size `groups`.
  Optimizer(std::vector<torch::Tensor> params, OptimizerOptions options, int64_t groups = 0);

  // The learning rate at `step` (0-based) under the schedule.
  double LearningRate(int64_t step) const;
  // Clips (if configured) and applies one update from the parameters' .grad(); returns the
  // pre-clipping gradient norm (the largest over groups). Parameters without grad are skipped.
  double Step();
  void ZeroGrad();
  int64_t step() const { return step_; }

 private:
  std::vector<torch::Tensor> params_;
  std::vector<torch::Tensor> m_, v_;
  OptimizerOptions o_;
  int64_t groups_;
  int64_t step_ = 0;
};

}  // namespace fedlora::device

#endif  // FEDLORA_DEVICE_OPTIMIZER_H_
