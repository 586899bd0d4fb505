// fedlora coordinator init --state DIR --model DIR [recipe flags]: a state folder with the
// initial global adapter, the run's recipe (coordinator.json), single-use enrolment tokens and a
// demo CA + server certificate.
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli_common.h"
#include "fedlora/adapters/lora_adapter.h"
#include "fedlora/adapters/slot_layout.h"
#include "fedlora/common/random.h"
#include "fedlora/coordinator/cluster_key.h"
#include "fedlora/coordinator/state_folder.h"
#include "fedlora/device/runtime.h"
#include "fedlora/io/model_identity.h"
#include "fedlora/privacy/defaults.h"

namespace fedlora::cli {
namespace {

struct InitOpts {
  std::string state, model, store;
  int rank = 8;
  double alpha = 16;
  std::vector<std::string> targets = {"q_proj", "v_proj"};
  int tokens = 10;
  int goal = 2, population = 2, rounds = 3;
  int max_cohort = 0;
  int max_shard_size = 0;
  double sampling_rate = 0;
  double noise = 1.0, clip = 0.5, epsilon_budget = 0, delta = 0, min_survivors = 0.8;
  bool adaptive_clip = false;
  int bits = 20;
  int steps = 20, batch = 8, seq = 64, min_examples = 1;
  double lr = 2e-3, server_lr = 1.0;
  std::string lora_method = "lora", server_optimizer = "fedavg";
  double server_beta1 = 0.9, server_beta2 = 0.99, server_eps = 1e-3;
  double selection_window = 10, train_deadline = 300, phase_deadline = 60;
  std::vector<std::string> tls_names = {"localhost"};
  std::vector<std::string> tls_ips = {"127.0.0.1"};
  bool json = false;
};

absl::StatusOr<nlohmann::json> Init(const InitOpts& o) {
  auto base_sha = io::ModelSha256(o.model);
  if (!base_sha.ok()) return base_sha.status();
  auto rt = device::LoadRuntime(o.model);
  if (!rt.ok()) return rt.status();
  adapters::LoraConfig lc;
  lc.rank = o.rank;
  lc.alpha = o.alpha;
  lc.targets.clear();
  for (const auto& t : o.targets) {
    model::Proj p;
    if (!model::ParseProj(t, &p)) {
      return absl::InvalidArgumentError(absl::StrCat("unknown --targets entry '", t, "'"));
    }
    lc.targets.push_back(p);
  }
  SecureRandom rng;
  auto adapter = adapters::LoraAdapter::Create(rt->model->config(), lc, rng.NextU64());
  if (!adapter.ok()) return adapter.status();

  coordinator::StateFolderSpec spec;
  spec.state_dir = o.state;
  spec.store = o.store;
  spec.config = {
      {"goal", o.goal},
      {"population", o.population},
      {"sampling_rate", o.sampling_rate > 0
                            ? o.sampling_rate
                            : std::min(1.0, double(o.goal) / std::max(1, o.population))},
      {"max_cohort", o.max_cohort},  // 0: derived when the folder is created (below)
      {"noise_multiplier", o.noise},
      {"clip", o.clip},
      {"adaptive_clip", o.adaptive_clip},
      {"bits", o.bits},
      {"min_survivors", o.min_survivors},
      {"max_shard_size", o.max_shard_size},
      {"delta", o.delta > 0 ? o.delta : privacy::DefaultDelta(o.population)},
      {"epsilon_budget", o.epsilon_budget},
      {"server_lr", o.server_lr},
      {"server_optimizer", o.server_optimizer},
      {"server_beta1", o.server_beta1},
      {"server_beta2", o.server_beta2},
      {"server_eps", o.server_eps},
      {"lora_method", o.lora_method},
      {"rounds", o.rounds},
      {"steps", o.steps},
      {"batch_size", o.batch},
      {"seq_len", o.seq},
      {"lr", o.lr},
      {"min_examples", o.min_examples},
      {"selection_window_s", o.selection_window},
      {"train_deadline_s", o.train_deadline},
      {"phase_deadline_s", o.phase_deadline},
      {"base_model_sha256", *base_sha},
  };
  spec.initial.lora = lc.ToPeftJson();
  spec.initial.base_model_sha256 = *base_sha;
  spec.initial.values = adapter->Flatten();
  spec.initial.slots = adapters::SlotLayout(*adapter);  // ffa / fedsa map their shared values
  spec.tokens = o.tokens;
  spec.tls_names = o.tls_names;
  spec.tls_ips = o.tls_ips;
  auto info = coordinator::CreateStateFolder(spec);
  if (!info.ok()) return info.status();
  return nlohmann::json{
      {"state", o.state},
      {"store", o.store.empty() ? "sqlite" : "postgresql"},
      {"base_model_sha256", *base_sha},
      {"adapter_values", spec.initial.values.size()},
      {"adapter_sha256", info->adapter_sha256},
      {"tokens_file", info->tokens_file},
      {"tokens", o.tokens},
      {"ca", info->ca_pem},
      {"cluster_key", o.store.empty()
                          ? nlohmann::json(nullptr)
                          : nlohmann::json(o.state + "/" + coordinator::kClusterKeyFile)},
      {"epsilon_per_round", info->epsilon_per_round},
      {"config", spec.config}};
}

}  // namespace

void RegisterCommand_coordinator_init(CLI::App& app) {
  auto* parent = GetOrAddSubcommand(app, "coordinator",
                                    "the federated coordinator: init, run, status, tokens, revoke");
  auto o = std::make_shared<InitOpts>();
  auto* cmd = parent->add_subcommand(
      "init", "create a coordinator state folder: initial adapter, recipe, tokens, demo TLS");
  cmd->footer(
      "Examples:\n"
      "  fedlora coordinator init --state coord --model ../shared/fixtures/hf-tiny-llama\n"
      "  fedlora coordinator init --state coord --model M --goal 100 --population 10000 \\\n"
      "      --noise-multiplier 1.0 --epsilon-budget 8 --tokens 500");
  cmd->add_option("--state", o->state, "new state folder")->required();
  cmd->add_option("--store", o->store,
                  "multi-host: the population's PostgreSQL database (libpq conninfo or "
                  "postgresql:// URI, no password; default: SQLite inside --state)");
  cmd->add_option("--model", o->model, "base model directory (its hash is recorded)")->required();
  cmd->add_option("--rank", o->rank, "LoRA rank")->capture_default_str()->check(GreaterThan(0));
  cmd->add_option("--alpha", o->alpha, "LoRA alpha")->capture_default_str();
  cmd->add_option("--targets", o->targets, "projections")->capture_default_str();
  cmd->add_option("--tokens", o->tokens, "single-use enrolment tokens to create")
      ->capture_default_str()
      ->check(AtLeast(0));
  cmd->add_option("--goal", o->goal,
                  "expected devices per round (public): the noise is calibrated for "
                  "min_survivors of it and the mean divides by it")
      ->capture_default_str()
      ->check(AtLeast(2));
  cmd->add_option("--population", o->population, "fleet size (sets the default rate and delta)")
      ->capture_default_str()
      ->check(AtLeast(1));
  cmd->add_option("--sampling-rate", o->sampling_rate,
                  "Poisson rate q per check-in (0 = goal / population)")
      ->capture_default_str()
      ->check(AtLeast(0));
  cmd->add_option("--max-cohort", o->max_cohort,
                  "largest sample a round may sum; a larger one aborts the round, charged "
                  "(0 = min(population, ceil(mu + 5 sqrt(mu) + 2)), mu = q x population)")
      ->capture_default_str()
      ->check(AtLeast(0));
  cmd->add_option("--max-shard-size", o->max_shard_size,
                  "run a round of n sampled devices as ceil(n / S) secure-aggregation sessions "
                  "of balanced size; each device's noise is then calibrated for its shard's "
                  "minimum (more noise); pinned at init (0 = one session per round)")
      ->capture_default_str()
      ->check(AtLeast(0));
  cmd->add_option("--noise-multiplier", o->noise, "total noise multiplier z")
      ->capture_default_str()
      ->check(GreaterThan(0));
  cmd->add_option("--clip", o->clip, "L2 clip of a device's delta")
      ->capture_default_str()
      ->check(GreaterThan(0));
  cmd->add_flag("--adaptive-clip", o->adaptive_clip, "adapt the clip to the median norm");
  cmd->add_option("--bits", o->bits, "secure-aggregation modulus bits")->capture_default_str();
  cmd->add_option("--min-survivors", o->min_survivors,
                  "fraction of the goal the noise is calibrated for")
      ->capture_default_str();
  cmd->add_option("--epsilon-budget", o->epsilon_budget,
                  "stop before epsilon exceeds this (0 = none)")
      ->capture_default_str()
      ->check(AtLeast(0));
  cmd->add_option("--delta", o->delta,
                  "target delta (0 = min(1e-5, population^-1.1), privacy/defaults.h)")
      ->capture_default_str();
  cmd->add_option("--rounds", o->rounds, "rounds to run (0 = until the budget)")
      ->capture_default_str()
      ->check(AtLeast(0));
  cmd->add_option("--steps", o->steps, "local steps per round")
      ->capture_default_str()
      ->check(GreaterThan(0));
  cmd->add_option("--batch", o->batch, "windows per step")
      ->capture_default_str()
      ->check(GreaterThan(0));
  cmd->add_option("--seq", o->seq, "tokens per window")->capture_default_str()->check(AtLeast(2));
  cmd->add_option("--lr", o->lr, "device learning rate")->capture_default_str();
  cmd->add_option("--server-lr", o->server_lr, "server learning rate")->capture_default_str();
  cmd->add_option("--server-optimizer", o->server_optimizer,
                  "server step: fedavg, fedadam or fedyogi (Reddi et al.; their moments are "
                  "stored with every version and survive a restart); pinned at init")
      ->capture_default_str()
      ->check(CLI::IsMember({"fedavg", "fedadam", "fedyogi"}));
  cmd->add_option("--server-beta1", o->server_beta1, "first-moment decay (fedadam/fedyogi)")
      ->capture_default_str();
  cmd->add_option("--server-beta2", o->server_beta2, "second-moment decay (fedadam/fedyogi)")
      ->capture_default_str();
  cmd->add_option("--server-eps", o->server_eps, "adaptivity tau (fedadam/fedyogi)")
      ->capture_default_str();
  cmd->add_option("--lora-method", o->lora_method,
                  "what devices train and share: lora (A and B), ffa (FFA-LoRA: A frozen, only "
                  "B shared) or fedsa (FedSA-LoRA: A shared, each device keeps its own B); "
                  "pinned at init")
      ->capture_default_str()
      ->check(CLI::IsMember({"lora", "ffa", "fedsa"}));
  cmd->add_option("--min-examples", o->min_examples, "windows a device needs to take part")
      ->capture_default_str();
  cmd->add_option("--selection-window", o->selection_window,
                  "seconds of each round's selection window, from the round's opening")
      ->capture_default_str()
      ->check(GreaterThan(0));
  cmd->add_option("--train-deadline", o->train_deadline, "seconds from task to AdvertiseKeys")
      ->capture_default_str();
  cmd->add_option("--phase-deadline", o->phase_deadline, "seconds per later phase")
      ->capture_default_str();
  cmd->add_option("--tls-name", o->tls_names, "DNS names in the demo server certificate")
      ->capture_default_str();
  cmd->add_option("--tls-ip", o->tls_ips, "IP addresses in the demo server certificate")
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "print one JSON summary");
  cmd->callback([o] {
    auto r = Init(*o);
    if (!r.ok()) return (void)Fail(r.status());
    if (o->json) return PrintJson(*r);
    std::printf(
        "initialised %s\n  base model   %s\n  adapter      %zu values (version 1)\n"
        "  tokens       %d in %s (single-use, keep them secret)\n  CA           %s\n"
        "  epsilon      %.4g per round at delta %.3g (q = %.3g)\n"
        "  training     lora_method %s, server_optimizer %s\n"
        "next: fedlora coordinator run --state %s\n",
        o->state.c_str(), (*r)["base_model_sha256"].get<std::string>().c_str(),
        (*r)["adapter_values"].get<size_t>(), o->tokens,
        (*r)["tokens_file"].get<std::string>().c_str(), (*r)["ca"].get<std::string>().c_str(),
        (*r)["epsilon_per_round"].get<double>(), (*r)["config"]["delta"].get<double>(),
        (*r)["config"]["sampling_rate"].get<double>(), o->lora_method.c_str(),
        o->server_optimizer.c_str(), o->state.c_str());
    if (!o->store.empty()) {
      std::printf(
          "multi-host: copy %s (with cluster.key, the leader's credential for aggregators) to\n"
          "  every coordinator, edge and aggregator host; never to a device\n",
          o->state.c_str());
    }
  });
}

}  // namespace fedlora::cli
