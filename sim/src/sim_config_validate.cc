// ValidateConfig: range and cross-field checks of SimConfig. Every problem names its key;
// all problems are reported at once.
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "fedlora/data/load.h"
#include "fedlora/device/optimizer.h"
#include "fedlora/model/llama.h"
#include "fedlora/sim/sim_config.h"

namespace fedlora::sim {
namespace {

// Collects "key: problem (got value)" lines.
class Problems {
 public:
  template <typename T>
  void Check(bool ok, absl::string_view key, absl::string_view requirement, const T& value) {
    if (!ok) list_.push_back(absl::StrCat(key, ": must be ", requirement, " (got ", value, ")"));
  }
  void Add(std::string problem) { list_.push_back(std::move(problem)); }
  absl::Status ToStatus() const {
    if (list_.empty()) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat("invalid sim config: ", absl::StrJoin(list_, "; "),
                     " (hint: docs/sim.md lists every key with its allowed range)"));
  }

 private:
  std::vector<std::string> list_;
};

bool InUnitOpen(double v) { return v >= 0 && v < 1; }  // [0, 1)

}  // namespace

absl::Status ValidateConfig(const SimConfig& c) {
  Problems p;
  // [run]
  p.Check(c.threads >= 0, "run.threads", ">= 0", c.threads);
  p.Check(!c.out.empty(), "run.out", "a directory path", "''");
  {
    const std::set<std::string> methods = {"none", "int8", "rtn", "nf4", "gptq", "caldera"};
    p.Check(methods.count(c.compress) > 0, "model.compress",
            "one of none, int8, rtn, nf4, gptq, caldera", c.compress);
    p.Check(c.compress_bits >= 2 && c.compress_bits <= 8, "model.compress_bits", "in [2, 8]",
            c.compress_bits);
    p.Check(c.compress_group >= 8, "model.compress_group", ">= 8", c.compress_group);
  }
  if (c.transport == Transport::kGrpc) {
    // What the network coordinator runs: deltas leave devices only inside secure aggregation,
    // selection is one Poisson coin per check-in. Every LoRA method and server optimizer runs.
    const char* why = " with run.transport = grpc (the coordinator runs nothing else)";
    if (c.dp != DpMode::kDistributed) {
      p.Add(absl::StrCat("privacy.dp: must be distributed", why));
    }
    if (c.sampling != SamplingMode::kPoisson) {
      p.Add(absl::StrCat("rounds.sampling: must be poisson", why));
    }
    if (c.modclip_prob != 1e-4) {
      p.Add(absl::StrCat("privacy.modclip_prob: must keep its default 1e-4", why));
    }
  }
  p.Check(c.grpc_edges >= 0 && c.grpc_edges <= 16, "grpc.edges", "in [0, 16]", c.grpc_edges);
  p.Check(c.grpc_aggregators >= 0 && c.grpc_aggregators <= 16, "grpc.aggregators", "in [0, 16]",
          c.grpc_aggregators);
  p.Check(c.grpc_standbys >= 0 && c.grpc_standbys <= 8, "grpc.standbys", "in [0, 8]",
          c.grpc_standbys);
  if (c.grpc_cluster && c.transport != Transport::kGrpc) {
    p.Add("grpc.cluster: needs run.transport = grpc (hint: --transport grpc)");
  }
  // [pretrain] only matters when there is no base model.
  if (c.model.empty()) {
    p.Check(c.pretrain_vocab >= 16, "pretrain.vocab", ">= 16", c.pretrain_vocab);
    p.Check(c.pretrain_hidden > 0, "pretrain.hidden", "> 0", c.pretrain_hidden);
    p.Check(c.pretrain_layers > 0, "pretrain.layers", "> 0", c.pretrain_layers);
    p.Check(c.pretrain_heads > 0, "pretrain.heads", "> 0", c.pretrain_heads);
    if (c.pretrain_heads > 0 && c.pretrain_hidden > 0) {
      p.Check(c.pretrain_hidden % c.pretrain_heads == 0, "pretrain.heads",
              "a divisor of pretrain.hidden", c.pretrain_heads);
    }
    p.Check(c.pretrain_steps >= 0, "pretrain.steps", ">= 0", c.pretrain_steps);
    p.Check(c.pretrain_batch > 0, "pretrain.batch", "> 0", c.pretrain_batch);
    p.Check(c.pretrain_lr > 0, "pretrain.lr", "> 0", c.pretrain_lr);
    p.Check(c.pretrain_public_lines > 0, "pretrain.public_lines", "> 0", c.pretrain_public_lines);
  }
  // [data]
  p.Check(!c.data.empty(), "data.data", "a dataset path or a personas spec", "''");
  if (auto format = data::ParseDataFormat(c.data_format); !format.ok()) {
    p.Add(absl::StrCat("data.format: ", format.status().message()));
  }
  p.Check(c.min_lines >= 0, "data.min_lines", ">= 0", c.min_lines);
  p.Check(InUnitOpen(c.test_fraction), "data.test_fraction", "in [0, 1)", c.test_fraction);
  p.Check(InUnitOpen(c.heldout_fraction), "data.heldout_fraction", "in [0, 1)", c.heldout_fraction);
  p.Check(c.devices >= 0, "data.devices", ">= 0 (0 = all users)", c.devices);
  // [rounds]
  p.Check(c.rounds > 0, "rounds.rounds", "> 0", c.rounds);
  p.Check(c.cohort > 0, "rounds.cohort", "> 0", c.cohort);
  if (c.devices > 0) {
    p.Check(c.cohort <= c.devices, "rounds.cohort", absl::StrCat("<= data.devices = ", c.devices),
            c.cohort);
  }
  p.Check(c.poisson_rate >= 0 && c.poisson_rate <= 1, "rounds.poisson_rate", "in [0, 1]",
          c.poisson_rate);
  p.Check(c.eval_every > 0, "rounds.eval_every", "> 0", c.eval_every);
  p.Check(c.eval_users > 0, "rounds.eval_users", "> 0", c.eval_users);
  p.Check(c.lora_method == "lora" || c.lora_method == "ffa" || c.lora_method == "fedsa",
          "lora.method", "lora, ffa or fedsa", c.lora_method);
  p.Check(c.personalize_steps >= 0, "rounds.personalize_steps", ">= 0", c.personalize_steps);
  p.Check(c.personalize == "finetune" || c.personalize == "dual" || c.personalize == "ditto" ||
              c.personalize == "interpolate" || (c.personalize == "ngram" && c.strip == "lexicon"),
          "rounds.personalize", "ngram (with rounds.strip = lexicon), finetune, dual, ditto or "
          "interpolate", c.personalize);
  p.Check(c.strip == "lexicon" || c.strip == "greedy", "rounds.strip", "lexicon or greedy",
          c.strip);
  p.Check(c.strip_public_weight >= 0 && c.strip_public_weight < 1, "rounds.strip_public_weight",
          "in [0, 1)", c.strip_public_weight);
  p.Check(c.strip_second_pieces >= 0 && c.strip_second_pieces <= 64, "rounds.strip_second_pieces",
          "in [0, 64]", c.strip_second_pieces);
  p.Check(c.strip_second_weight >= 0 && c.strip_second_weight <= 1, "rounds.strip_second_weight",
          "in [0, 1]", c.strip_second_weight);
  p.Check(c.personal_ngram_bytes >= 4096, "rounds.personal_ngram_bytes", ">= 4096",
          c.personal_ngram_bytes);
  p.Check(c.personal_rank >= 1, "rounds.personal_rank", ">= 1", c.personal_rank);
  p.Check(c.interpolate_fit == "keystrokes" || c.interpolate_fit == "loss" ||
              c.interpolate_fit == "pooled",
          "rounds.interpolate_fit", "keystrokes, loss or pooled", c.interpolate_fit);
  p.Check(c.interpolate_with == "finetune" || c.interpolate_with == "dual",
          "rounds.interpolate_with", "finetune or dual", c.interpolate_with);
  p.Check(c.ditto_mu >= 0, "rounds.ditto_mu", ">= 0", c.ditto_mu);
  p.Check(c.personalize_val_fraction >= 0 && c.personalize_val_fraction < 1,
          "rounds.personalize_val_fraction", "in [0, 1)", c.personalize_val_fraction);
  // [local]
  p.Check(c.local_steps >= 0, "local.steps", ">= 0", c.local_steps);
  p.Check(c.local_epochs >= 0, "local.epochs", ">= 0", c.local_epochs);
  if (c.local_steps == 0 && c.local_epochs == 0) {
    p.Add("local.steps: local.steps and local.epochs are both 0; set one of them > 0");
  }
  p.Check(c.local_batch > 0, "local.batch", "> 0", c.local_batch);
  p.Check(c.seq_len >= 2, "local.seq_len", ">= 2", c.seq_len);
  if (auto opt = device::ParseOptimizer(c.local_optimizer); !opt.ok()) {
    p.Add(absl::StrCat("local.optimizer: must be adamw or sgd (got '", c.local_optimizer, "')"));
  }
  p.Check(c.local_lr > 0, "local.lr", "> 0", c.local_lr);
  p.Check(c.local_clip >= 0, "local.clip", ">= 0 (0 = off)", c.local_clip);
  p.Check(c.max_group > 0, "local.max_group", "> 0", c.max_group);
  p.Check(c.workers >= 0, "local.workers", ">= 0", c.workers);
  // [lora]
  p.Check(c.rank > 0, "lora.rank", "> 0", c.rank);
  p.Check(c.alpha > 0, "lora.alpha", "> 0", c.alpha);
  p.Check(!c.targets.empty(), "lora.targets", "a non-empty list", "''");
  std::set<std::string> seen;
  for (const std::string& t : c.targets) {
    model::Proj proj;
    if (!model::ParseProj(t, &proj)) {
      p.Add(absl::StrCat("lora.targets: unknown projection '", t,
                         "' (allowed: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, "
                         "down_proj)"));
    } else if (!seen.insert(t).second) {
      p.Add(absl::StrCat("lora.targets: '", t, "' is listed twice"));
    }
  }
  // [server]
  p.Check(c.server_lr > 0, "server.lr", "> 0", c.server_lr);
  p.Check(InUnitOpen(c.server_beta1), "server.beta1", "in [0, 1)", c.server_beta1);
  p.Check(InUnitOpen(c.server_beta2), "server.beta2", "in [0, 1)", c.server_beta2);
  p.Check(c.server_eps > 0, "server.eps", "> 0", c.server_eps);
  // [privacy]
  if (c.dp != DpMode::kNone) {
    p.Check(c.noise_multiplier > 0, "privacy.noise_multiplier",
            absl::StrCat("> 0 with privacy.dp = ", DpModeName(c.dp), " (or set privacy.dp = none)"),
            c.noise_multiplier);
  } else {
    p.Check(c.noise_multiplier >= 0, "privacy.noise_multiplier", ">= 0", c.noise_multiplier);
  }
  p.Check(c.clip > 0, "privacy.clip", "> 0", c.clip);
  if (c.clip_mode == ClipMode::kAdaptive) {
    p.Check(c.target_quantile > 0 && c.target_quantile < 1, "privacy.target_quantile", "in (0, 1)",
            c.target_quantile);
    p.Check(c.clip_lr > 0, "privacy.clip_lr", "> 0", c.clip_lr);
  }
  p.Check(InUnitOpen(c.delta), "privacy.delta",
          "in [0, 1) (0 = min(1e-5, devices^-1.1), privacy/defaults.h)", c.delta);
  p.Check(c.epsilon_budget >= 0, "privacy.epsilon_budget", ">= 0 (0 = no budget)",
          c.epsilon_budget);
  p.Check(c.bits >= 8 && c.bits <= 32, "privacy.bits", "in [8, 32]", c.bits);
  p.Check(c.min_survivors > 0 && c.min_survivors <= 1, "privacy.min_survivors", "in (0, 1]",
          c.min_survivors);
  p.Check(c.modclip_prob > 0 && c.modclip_prob < 1, "privacy.modclip_prob", "in (0, 1)",
          c.modclip_prob);
  // [secagg]
  p.Check(InUnitOpen(c.dropout_advertise), "secagg.dropout_advertise", "in [0, 1)",
          c.dropout_advertise);
  p.Check(InUnitOpen(c.dropout_share), "secagg.dropout_share", "in [0, 1)", c.dropout_share);
  p.Check(InUnitOpen(c.dropout_masked), "secagg.dropout_masked", "in [0, 1)", c.dropout_masked);
  p.Check(InUnitOpen(c.dropout_unmask), "secagg.dropout_unmask", "in [0, 1)", c.dropout_unmask);
  p.Check(c.speed_sigma >= 0, "secagg.speed_sigma", ">= 0", c.speed_sigma);
  p.Check(c.deadline >= 0, "secagg.deadline", ">= 0 (0 = none)", c.deadline);
  p.Check(c.max_shard_size == 0 || c.max_shard_size >= 3, "secagg.max_shard_size",
          "0 (one session per round) or >= 3 (a shard of at least 2 devices)", c.max_shard_size);
  if (c.max_shard_size != 0 && c.transport == Transport::kInProcess && !UsesCoordinatorEngine(c)) {
    // The simulator's own sampling sums each round in one in-process session: it cannot shard,
    // and its noise would be calibrated for shards it never runs.
    const std::string why = CoordinatorEngineRefusal(c);
    p.Add(absl::StrCat(
        "secagg.max_shard_size: sharded rounds run only on the coordinator's round engine, not "
        "on the simulator's own sampling",
        why.empty() ? ""
                    : absl::StrCat(" (the coordinator engine cannot run this config: ", why, ")"),
        "; hint: set rounds.engine = coordinator, or run.transport = grpc, or "
        "secagg.max_shard_size = 0"));
  }
  if (c.engine == RoundEngine::kCoordinator && c.transport == Transport::kInProcess) {
    const std::string why = CoordinatorEngineRefusal(c);
    if (!why.empty()) {
      p.Add(absl::StrCat("rounds.engine: coordinator cannot run this config: ", why,
                         " (hint: rounds.engine = auto or simulator)"));
    }
  }
  return p.ToStatus();
}

std::string CoordinatorEngineRefusal(const SimConfig& c) {
  std::vector<std::string> why;
  if (c.dp != DpMode::kDistributed) why.push_back("privacy.dp is not distributed");
  if (c.sampling != SamplingMode::kPoisson) why.push_back("rounds.sampling is not poisson");
  // Not wired into the virtual-clock driver yet (coordinator_driver.cc trains and sends the
  // whole adapter); --transport grpc runs them through the real coordinator and devices.
  if (c.lora_method != "lora") why.push_back("lora.method is not lora");
  if (c.server_optimizer != ServerOptimizerKind::kFedAvg) {
    why.push_back("server.optimizer is not fedavg");
  }
  return absl::StrJoin(why, ", ");
}

bool UsesCoordinatorEngine(const SimConfig& c) {
  if (c.engine == RoundEngine::kSimulator) return false;
  return c.engine == RoundEngine::kCoordinator || CoordinatorEngineRefusal(c).empty();
}

std::string EngineDescription(const SimConfig& c) {
  if (c.transport == Transport::kGrpc) return "coordinator process over gRPC (real clock)";
  return UsesCoordinatorEngine(c) ? "coordinator round engine (virtual clock)"
                                  : "simulator's own sampling";
}

}  // namespace fedlora::sim
