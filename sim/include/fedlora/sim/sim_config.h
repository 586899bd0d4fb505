// Every knob of `fedlora sim`, with its default. The config file (INI: `[section]` then
// `key = value`, `#` or `;` comments) uses the keys "section.key" listed in docs/sim.md;
// command-line flags override the file.
#ifndef FEDLORA_SIM_SIM_CONFIG_H_
#define FEDLORA_SIM_SIM_CONFIG_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fedlora/coordinator/server_optimizer.h"
#include "fedlora/privacy/prepare_update.h"
#include "nlohmann/json.hpp"

namespace fedlora::sim {

using DpMode = privacy::DpMode;
using ServerOptimizerKind = coordinator::ServerOptimizerKind;
enum class ClipMode { kFixed, kAdaptive };
enum class SamplingMode { kFixed, kPoisson };
// kAuto: batched where the model's hidden size is at most kBatchedMaxHidden, sequential above
// (sim/cohort_trainer.h, ResolveTrainMode).
enum class TrainMode { kBatched, kSequential, kAuto };
enum class GraphMode { kComplete, kKRegular };
enum class Transport { kInProcess, kGrpc };
// Who samples, sums and charges the in-process rounds (rounds.engine): kCoordinator runs the
// coordinator's own RoundManager on a virtual clock; kSimulator the simulator's own sampling;
// kAuto the coordinator wherever it can run the config (UsesCoordinatorEngine).
enum class RoundEngine { kAuto, kCoordinator, kSimulator };

struct SimConfig {
  // [run]
  uint64_t seed = 1;
  std::string out = "sim-out";
  int threads = 0;  // BLAS threads, 0 = all cores
  Transport transport = Transport::kInProcess;

  // [grpc] (run.transport = grpc): a local multi-host cluster instead of one coordinator
  // process (coordinator/cluster.h: PostgreSQL, a leader, standbys, edges, HAProxy).
  bool grpc_cluster = false;
  int grpc_edges = 2;
  int grpc_standbys = 1;
  int grpc_aggregators = 2;  // `coordinator aggregator` processes (sharded rounds only)

  // [model]
  std::string model;  // base model directory (required unless pretrain)
  // The base devices run, as a phone would: compressed after pretraining (or from `model`).
  // none | int8 | rtn | nf4 | gptq | caldera (docs/compress.md); an already compressed
  // `model` is used as it is.
  std::string compress = "gptq";
  int compress_bits = 4;
  int compress_group = 64;
  // [pretrain]: when model is empty, pretrain a base on the public split first
  int pretrain_vocab = 1024;
  int64_t pretrain_hidden = 128;
  int64_t pretrain_layers = 2;
  int64_t pretrain_heads = 4;
  int64_t pretrain_steps = 250;
  int64_t pretrain_batch = 16;
  double pretrain_lr = 3e-3;
  int pretrain_public_lines = 6000;

  // [data]
  std::string data = "personas";  // path, or "personas[:users=N,seed=S,lines=L]"
  std::string data_format = "auto";
  int min_lines = 0;
  double test_fraction = 0.2;
  double heldout_fraction = 0.1;  // users kept out of training, evaluated only
  int devices = 200;              // population size (0 = all users of the dataset)

  // [rounds]
  int rounds = 10;
  SamplingMode sampling = SamplingMode::kPoisson;
  RoundEngine engine = RoundEngine::kAuto;
  int cohort = 50;             // fixed cohort size
  double poisson_rate = 0.0;   // q for Poisson sampling (0 = cohort / devices)
  int eval_every = 5;          // evaluate every K rounds (and after the last)
  int eval_users = 40;         // participants and held-out users scored per evaluation
  int personalize_steps = 20;  // local steps for the "personalized" metric
  // Share of each user's train lines held back from personalization to decide, on the user's
  // own text, whether the personalized adapter beats the global one (keystroke savings, then
  // loss); the device keeps the global adapter otherwise. 0 = always personalize.
  double personalize_val_fraction = 0.2;
  // How a device personalizes (docs/sim.md, "Personalization methods"): ngram | finetune |
  // dual | ditto | interpolate. The "personalized" metric uses this one. ngram: the lexicon
  // strip with the user's own word n-gram mixed in (needs strip = lexicon).
  std::string personalize = "ngram";
  // The suggestion strip the keyboard metrics score (docs/device.md, "Keyboard strip"):
  // lexicon (whole words of the public lexicon plus the user's own, ranked by the model and
  // the n-grams) | greedy (the model's 3 best word-starting tokens, each completed greedily).
  std::string strip = "lexicon";
  double strip_public_weight = 0.3;  // lexicon: weight m of the public n-gram beside the LM
  // lexicon: K, the first pieces whose words the model's second piece ranks (0: first only).
  int64_t strip_second_pieces = 0;
  double strip_second_weight = 0.5;  // lexicon: a, the second piece's share of the split
  // ngram: the personal n-gram's memory cap per user (pruned to it; the stated budget).
  int64_t personal_ngram_bytes = 2 << 20;
  // ngram: the personal counts learn each held-back and test line once it has been typed (a
  // phone's observe after every line), starting on the test text from all train lines.
  bool learn_typed = false;
  // At the final evaluation, also score every other method on the same users and adapter
  // (the methods table of summary.json and the report).
  bool personalize_compare = true;
  int personal_rank = 4;       // dual: rank of the private adapter beside the global one
  double ditto_mu = 0.01;      // ditto: weight of the proximal term towards the global adapter
  // interpolate: what the per-user weight is fitted to on the held-back lines: keystrokes
  // (keystroke savings, then loss) | loss (mean next-token loss) | pooled (one weight for the
  // group, by keystroke savings over all its users' held-back lines).
  std::string interpolate_fit = "keystrokes";
  // interpolate: the personal side of the mixture: finetune (the global adapter fine-tuned) |
  // dual (the frozen global adapter plus a private rank-personal_rank adapter).
  std::string interpolate_with = "dual";

  // [local]
  TrainMode train_mode = TrainMode::kAuto;
  int local_steps = 4;  // steps per device per round (0 = local_epochs)
  int local_epochs = 0;
  int64_t local_batch = 4;
  int64_t seq_len = 64;
  std::string local_optimizer = "adamw";
  double local_lr = 5e-3;
  double local_clip = 1.0;  // per-step gradient-norm clipping (0 = off)
  int max_group = 8;        // devices per batched pass
  int workers = 0;          // training threads (0 = one per core)

  // [lora]
  int rank = 8;
  double alpha = 16;
  std::vector<std::string> targets = {"q_proj", "v_proj"};
  // lora: A and B train and are shared. ffa: FFA-LoRA (Sun et al., ICLR 2024): A stays at its
  // random init on every device and the server, only B trains and is shared (half the upload).
  // fedsa: FedSA-LoRA (Guo et al., ICLR 2025): A is shared, each device keeps its own B.
  std::string lora_method = "lora";

  // [server]
  ServerOptimizerKind server_optimizer = ServerOptimizerKind::kFedAvg;
  double server_lr = 1.0;
  double server_beta1 = 0.9;
  double server_beta2 = 0.99;
  double server_eps = 1e-3;  // tau in Reddi et al.

  // [privacy]
  DpMode dp = DpMode::kDistributed;
  double noise_multiplier = 1.1;  // the main job: epsilon <= 8 against observers (docs/sim.md)
  ClipMode clip_mode = ClipMode::kFixed;
  double clip = 0.5;  // fixed bound, or the initial bound when adaptive
  double target_quantile = 0.5;
  double clip_lr = 0.2;
  double delta = 0;            // 0 = min(1e-5, devices^-1.1), privacy/defaults.h
  double epsilon_budget = 0;   // 0 = no budget; else refuse / stop before exceeding
  int bits = 20;               // modulus 2^bits of secure aggregation
  double min_survivors = 0.8;  // noise calibrated for this fraction of the cohort
  double modclip_prob = 1e-4;

  // [secagg]
  GraphMode graph = GraphMode::kKRegular;
  double dropout_advertise = 0.0;  // per-device dropout probability in each phase
  double dropout_share = 0.0;
  double dropout_masked = 0.02;
  double dropout_unmask = 0.0;
  double speed_sigma = 0.5;  // log-normal spread of device speed
  double deadline = 0.0;     // round deadline in simulated seconds (0 = none)
  // Sharded secure aggregation (coordinator/shard_plan.h): a round of n sampled devices runs as
  // ceil(n / max_shard_size) sessions; 0 = one session. Coordinator engines only.
  int max_shard_size = 0;

  // [output]
  bool json = false;
  bool progress = true;
  bool plots = true;
};

// Parses the INI text. INVALID_ARGUMENT naming the file, line and key for an unknown key,
// a malformed line or a bad value.
absl::Status ApplyConfigText(const std::string& text, const std::string& source, SimConfig* config);
absl::Status ApplyConfigFile(const std::string& path, SimConfig* config);
// Applies one "section.key=value" override (from --set or a flag).
absl::Status ApplyOverride(const std::string& key, const std::string& value, SimConfig* config);
// Cross-field validation (e.g. cohort <= devices, positive sizes). INVALID_ARGUMENT naming
// the key.
absl::Status ValidateConfig(const SimConfig& config);
// Why the coordinator's round engine cannot run `config` ("" when it can): it runs
// distributed DP with Poisson sampling over the whole adapter (lora.method = lora) and FedAvg
// only.
std::string CoordinatorEngineRefusal(const SimConfig& config);
// True when the in-process rounds run on the coordinator's RoundManager: rounds.engine =
// coordinator, or auto and CoordinatorEngineRefusal(config) is empty.
bool UsesCoordinatorEngine(const SimConfig& config);
// "coordinator round engine (virtual clock)" or "simulator's own sampling".
std::string EngineDescription(const SimConfig& config);
// Every key with its current value (for the report's config echo).
nlohmann::json ConfigToJson(const SimConfig& config);
// The same as an INI file that ApplyConfigText reads back to the same config, each key with its
// description as a comment (`fedlora sim --print-config`).
std::string ConfigToIni(const SimConfig& config);
// The documented list of keys: name, default, description (docs/sim.md is generated from it).
struct ConfigKeyDoc {
  std::string key;
  std::string default_value;
  std::string description;
};
std::vector<ConfigKeyDoc> ConfigKeys();

}  // namespace fedlora::sim

#endif  // FEDLORA_SIM_SIM_CONFIG_H_
