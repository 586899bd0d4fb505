// Command-line flags for the local trainer, shared by `train`, `pretrain` and `sim`.
#ifndef FEDLORA_TOOLS_TRAIN_FLAGS_H_
#define FEDLORA_TOOLS_TRAIN_FLAGS_H_

#include <CLI/CLI.hpp>
#include <string>

#include "absl/status/status.h"
#include "fedlora/device/trainer.h"

namespace fedlora::cli {

struct TrainFlags {
  std::string optimizer = "adamw";
  std::string schedule = "constant";
  double lr = 1e-3;
  double weight_decay = 0.0;
  int64_t warmup = 0;
  double clip = 1.0;
  int64_t batch = 8;
  int epochs = 1;
  int64_t steps = 0;
  uint64_t seed = 0;
  int shards = 0;
};

inline void AddTrainFlags(CLI::App* cmd, TrainFlags* f) {
  cmd->add_option("--optimizer", f->optimizer, "adamw or sgd")->capture_default_str();
  cmd->add_option("--schedule", f->schedule, "constant or cosine")->capture_default_str();
  cmd->add_option("--lr", f->lr, "peak learning rate")->capture_default_str();
  cmd->add_option("--weight-decay", f->weight_decay, "decoupled weight decay")
      ->capture_default_str();
  cmd->add_option("--warmup", f->warmup, "linear warm-up steps")->capture_default_str();
  cmd->add_option("--clip", f->clip, "gradient-norm clipping (0 = off)")->capture_default_str();
  cmd->add_option("--batch", f->batch, "windows per step")
      ->capture_default_str()
      ->check(GreaterThan(0));
  cmd->add_option("--epochs", f->epochs, "passes over the data")->capture_default_str();
  cmd->add_option("--steps", f->steps, "max steps (0 = by epochs)")->capture_default_str();
  cmd->add_option("--seed", f->seed, "seed")->capture_default_str();
  cmd->add_option("--shards", f->shards,
                  "data-parallel parts of each step, one thread each (0 = one per --threads; "
                  "1 = one pass, matrix products threaded)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
}

inline absl::Status ToTrainOptions(const TrainFlags& f, device::TrainOptions* o) {
  auto kind = device::ParseOptimizer(f.optimizer);
  if (!kind.ok()) return kind.status();
  auto sched = device::ParseSchedule(f.schedule);
  if (!sched.ok()) return sched.status();
  if (!(f.lr > 0)) return absl::InvalidArgumentError("--lr must be positive");
  o->optimizer.kind = *kind;
  o->optimizer.schedule = *sched;
  o->optimizer.lr = f.lr;
  o->optimizer.weight_decay = f.weight_decay;
  o->optimizer.warmup_steps = f.warmup;
  o->optimizer.max_grad_norm = f.clip;
  o->batch_size = f.batch;
  o->epochs = f.epochs;
  o->max_steps = f.steps;
  o->seed = f.seed;
  o->shards = f.shards;
  return absl::OkStatus();
}

}  // namespace fedlora::cli

#endif  // FEDLORA_TOOLS_TRAIN_FLAGS_H_
