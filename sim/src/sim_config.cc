// The key table of SimConfig: one table (Fields()) drives parsing, ConfigToJson and
// ConfigKeys (hence docs/sim.md). The INI reader is in sim_config_ini.cc, ValidateConfig in
// sim_config_validate.cc.
#include "fedlora/sim/sim_config.h"

#include <cmath>
#include <functional>
#include <type_traits>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "sim_config_internal.h"

namespace fedlora::sim {
namespace {

template <typename E>
struct EnumName {
  E value;
  const char* name;
};
const std::vector<EnumName<DpMode>>& Names(DpMode*) {
  static const auto* n = new std::vector<EnumName<DpMode>>{{DpMode::kNone, "none"},
                                                           {DpMode::kCentral, "central"},
                                                           {DpMode::kDistributed, "distributed"}};
  return *n;
}
const std::vector<EnumName<ServerOptimizerKind>>& Names(ServerOptimizerKind*) {
  static const auto* n =
      new std::vector<EnumName<ServerOptimizerKind>>{{ServerOptimizerKind::kFedAvg, "fedavg"},
                                                     {ServerOptimizerKind::kFedAdam, "fedadam"},
                                                     {ServerOptimizerKind::kFedYogi, "fedyogi"}};
  return *n;
}
const std::vector<EnumName<ClipMode>>& Names(ClipMode*) {
  static const auto* n = new std::vector<EnumName<ClipMode>>{{ClipMode::kFixed, "fixed"},
                                                             {ClipMode::kAdaptive, "adaptive"}};
  return *n;
}
const std::vector<EnumName<SamplingMode>>& Names(SamplingMode*) {
  static const auto* n = new std::vector<EnumName<SamplingMode>>{
      {SamplingMode::kFixed, "fixed"}, {SamplingMode::kPoisson, "poisson"}};
  return *n;
}
const std::vector<EnumName<TrainMode>>& Names(TrainMode*) {
  static const auto* n = new std::vector<EnumName<TrainMode>>{
      {TrainMode::kBatched, "batched"},
      {TrainMode::kSequential, "sequential"},
      {TrainMode::kAuto, "auto"}};
  return *n;
}
const std::vector<EnumName<Transport>>& Names(Transport*) {
  static const auto* n = new std::vector<EnumName<Transport>>{{Transport::kInProcess, "inprocess"},
                                                              {Transport::kGrpc, "grpc"}};
  return *n;
}
const std::vector<EnumName<RoundEngine>>& Names(RoundEngine*) {
  static const auto* n =
      new std::vector<EnumName<RoundEngine>>{{RoundEngine::kAuto, "auto"},
                                             {RoundEngine::kCoordinator, "coordinator"},
                                             {RoundEngine::kSimulator, "simulator"}};
  return *n;
}
const std::vector<EnumName<GraphMode>>& Names(GraphMode*) {
  static const auto* n = new std::vector<EnumName<GraphMode>>{{GraphMode::kComplete, "complete"},
                                                              {GraphMode::kKRegular, "kregular"}};
  return *n;
}

// Each ParseValue returns "" on success (and sets *out) or the problem, e.g.
// "expected an integer, got 'ten'"; *out is untouched on failure.
std::string Quoted(const std::string& s) { return absl::StrCat("'", s, "'"); }

template <typename I>
std::string ParseInteger(const std::string& s, I* out) {
  I v;
  if (!absl::SimpleAtoi(s, &v)) {
    return absl::StrCat("expected ",
                        std::is_signed<I>::value ? "an integer" : "a non-negative integer",
                        ", got ", Quoted(s));
  }
  *out = v;
  return "";
}
std::string ParseValue(const std::string& s, int* out) { return ParseInteger(s, out); }
std::string ParseValue(const std::string& s, int64_t* out) { return ParseInteger(s, out); }
std::string ParseValue(const std::string& s, uint64_t* out) { return ParseInteger(s, out); }
std::string ParseValue(const std::string& s, double* out) {
  double v;
  if (!absl::SimpleAtod(s, &v) || !std::isfinite(v)) {
    return absl::StrCat("expected a finite number, got ", Quoted(s));
  }
  *out = v;
  return "";
}
std::string ParseValue(const std::string& s, bool* out) {
  const std::string l = absl::AsciiStrToLower(s);
  if (l == "true" || l == "1" || l == "yes") {
    *out = true;
  } else if (l == "false" || l == "0" || l == "no") {
    *out = false;
  } else {
    return absl::StrCat("expected a boolean (true/false/1/0/yes/no), got ", Quoted(s));
  }
  return "";
}
std::string ParseValue(const std::string& s, std::string* out) {
  *out = s;
  return "";
}
std::string ParseValue(const std::string& s, std::vector<std::string>* out) {
  std::vector<std::string> items;
  for (absl::string_view part : absl::StrSplit(s, ',')) {
    part = absl::StripAsciiWhitespace(part);
    if (part.empty()) return absl::StrCat("expected a comma-separated list, got ", Quoted(s));
    items.emplace_back(part);
  }
  *out = std::move(items);
  return "";
}
template <typename E, typename = std::enable_if_t<std::is_enum<E>::value>>
std::string ParseValue(const std::string& s, E* out) {
  std::vector<std::string> allowed;
  for (const auto& n : Names(static_cast<E*>(nullptr))) {
    if (s == n.name) {
      *out = n.value;
      return "";
    }
    allowed.push_back(n.name);
  }
  return absl::StrCat(Quoted(s), " is not allowed (allowed: ", absl::StrJoin(allowed, ", "), ")");
}

template <typename T, typename = std::enable_if_t<!std::is_enum<T>::value>>
nlohmann::json ToJsonValue(const T& v) {
  return nlohmann::json(v);
}
template <typename E, typename = std::enable_if_t<std::is_enum<E>::value>, typename = void>
nlohmann::json ToJsonValue(E v) {
  for (const auto& n : Names(static_cast<E*>(nullptr))) {
    if (n.value == v) return n.name;
  }
  return static_cast<int>(v);  // unreachable for valid enum values
}

// One configuration key: its name, documentation and typed access to its SimConfig field.
struct Field {
  const char* key;
  const char* doc;
  std::function<std::string(const std::string&, SimConfig*)> parse;
  std::function<nlohmann::json(const SimConfig&)> get;
};

template <typename T>
Field F(const char* key, T SimConfig::*member, const char* doc) {
  return Field{
      key, doc,
      [member](const std::string& v, SimConfig* c) { return ParseValue(v, &(c->*member)); },
      [member](const SimConfig& c) { return ToJsonValue(c.*member); }};
}

const std::vector<Field>& Fields() {
  using C = SimConfig;
  static const auto* fields = new std::vector<Field>{
      // [run]
      F("run.seed", &C::seed, "Seed of every random choice (sampling, dropout, noise, init)."),
      F("run.out", &C::out,
        "Output directory: rounds.csv, rounds.jsonl, summary.json, "
        "report.md, plots and the final adapter."),
      F("run.threads", &C::threads, "BLAS/intra-op threads; 0 = all cores."),
      F("run.transport", &C::transport,
        "inprocess: rounds run in this process (fast, seeded). grpc: a real coordinator process "
        "on loopback TLS and every device as a gRPC client of it (a deployment rehearsal; "
        "distributed DP and Poisson sampling; every lora.method and server.optimizer; device noise "
        "from SecureRandom)."),
      // [grpc]
      F("grpc.cluster", &C::grpc_cluster,
        "With run.transport = grpc: run the rounds on a local multi-host cluster (PostgreSQL 15, "
        "a leader, grpc.standbys standbys, grpc.edges edges, grpc.aggregators aggregators and "
        "HAProxy, each its own process, as `fedlora cluster up` starts them) instead of one "
        "coordinator process; devices reach it through HAProxy. Needs postgresql-15 and haproxy."),
      F("grpc.edges", &C::grpc_edges,
        "With grpc.cluster: edge processes behind HAProxy (0 = HAProxy in front of the "
        "coordinators)."),
      F("grpc.standbys", &C::grpc_standbys,
        "With grpc.cluster: warm standby coordinators beside the leader."),
      F("grpc.aggregators", &C::grpc_aggregators,
        "With grpc.cluster: aggregator processes (`coordinator aggregator`) that run the "
        "secure aggregation of each round's shards when secagg.max_shard_size shards it (the "
        "summary counts the shards each summed); 0 = the leader runs them."),
      // [model]
      F("model.model", &C::model,
        "Base model directory (HF Llama checkpoint + tokenizer.model). "
        "Empty = pretrain a small base on the public split first."),
      F("model.compress", &C::compress,
        "The base the devices run: none (float32) | int8 | rtn | nf4 | gptq | caldera. The "
        "float base is compressed first (gptq and caldera calibrate on the public text), as "
        "a phone would hold it; an already compressed model.model is used as it is."),
      F("model.compress_bits", &C::compress_bits, "Bits of rtn / gptq codes (caldera: Q bits)."),
      F("model.compress_group", &C::compress_group, "Input columns per scale group."),
      // [pretrain]
      F("pretrain.vocab", &C::pretrain_vocab, "Tokenizer vocabulary size of the pretrained base."),
      F("pretrain.hidden", &C::pretrain_hidden, "Hidden size of the pretrained base."),
      F("pretrain.layers", &C::pretrain_layers, "Decoder layers of the pretrained base."),
      F("pretrain.heads", &C::pretrain_heads, "Attention heads (must divide pretrain.hidden)."),
      F("pretrain.steps", &C::pretrain_steps, "Pretraining optimizer steps."),
      F("pretrain.batch", &C::pretrain_batch, "Pretraining batch size (sequences)."),
      F("pretrain.lr", &C::pretrain_lr, "Pretraining learning rate."),
      F("pretrain.public_lines", &C::pretrain_public_lines,
        "Lines of public text (from users outside the population) used for pretraining."),
      // [data]
      F("data.data", &C::data,
        "Dataset path, or \"personas[:users=N,seed=S,lines=L]\" for the "
        "built-in synthetic keyboard personas."),
      F("data.format", &C::data_format,
        "auto | dir | jsonl | shakespeare-tsv | play-text | personas (see docs/data.md)."),
      F("data.min_lines", &C::min_lines, "Drop users with fewer lines than this."),
      F("data.test_fraction", &C::test_fraction,
        "Fraction of each user's lines kept as test text, in [0, 1)."),
      F("data.heldout_fraction", &C::heldout_fraction,
        "Fraction of users kept out of training and only evaluated, in [0, 1)."),
      F("data.devices", &C::devices, "Population size (virtual devices); 0 = all users."),
      // [rounds]
      F("rounds.rounds", &C::rounds, "Federated rounds."),
      F("rounds.sampling", &C::sampling,
        "poisson (each device independently with q = rounds.poisson_rate; epsilon for "
        "add/remove one user) | fixed (exactly rounds.cohort devices; epsilon for replace one "
        "user, sampling without replacement)."),
      F("rounds.cohort", &C::cohort, "Devices sampled per round (expected size under poisson)."),
      F("rounds.poisson_rate", &C::poisson_rate,
        "Per-device sampling probability q for poisson; 0 = cohort / devices."),
      F("rounds.engine", &C::engine,
        "Who samples, sums and charges the rounds in process: coordinator (the coordinator's "
        "own RoundManager on a virtual clock, its SQLite store under <out>/coordinator/) | "
        "simulator (the simulator's own sampling and in-process secure aggregation) | auto "
        "(coordinator for distributed DP with poisson sampling, lora.method = lora and "
        "server.optimizer = fedavg; simulator otherwise)."),
      F("rounds.eval_every", &C::eval_every, "Evaluate every K rounds (and after the last)."),
      F("rounds.eval_users", &C::eval_users,
        "Participants and held-out users scored per evaluation (each)."),
      F("rounds.personalize_steps", &C::personalize_steps,
        "Local steps on a user's own train text for the \"personalized\" metric."),
      F("rounds.personalize_val_fraction", &C::personalize_val_fraction,
        "Share of a user's train lines held back from personalization to check, on the user's "
        "own text, that the personalized adapter beats the global one (keystroke savings, "
        "then loss); otherwise the device keeps the global adapter. 0 = always personalize."),
      F("rounds.strip", &C::strip,
        "lexicon (the strip ranks whole words of the public lexicon plus the user's own) | "
        "greedy (3 best word-starting tokens, each completed greedily: the old strip)."),
      F("rounds.strip_public_weight", &C::strip_public_weight,
        "lexicon: weight of the public word n-gram beside the language model."),
      F("rounds.strip_second_pieces", &C::strip_second_pieces,
        "lexicon: K, the most probable first pieces (fitting the typed characters) whose words "
        "the model's next piece ranks too; 0 = the first piece only (docs/device.md)."),
      F("rounds.strip_second_weight", &C::strip_second_weight,
        "lexicon: share of an expanded first piece's mass split by the model's second piece "
        "(the rest by the n-gram completion)."),
      F("rounds.personal_ngram_bytes", &C::personal_ngram_bytes,
        "ngram: memory cap of a user's personal word n-gram (pruned to it)."),
      F("rounds.learn_typed", &C::learn_typed,
        "ngram: the personal counts learn each line once it is typed, as a phone's observe "
        "does (held-back and test lines; the test starts from all train lines)."),
      F("rounds.personalize", &C::personalize,
        "ngram (the user's own word n-gram mixed into the lexicon strip, weight fitted on the "
        "held-back lines; no training) | finetune (local steps from the global adapter) | dual (a private rank-"
        "rounds.personal_rank adapter trained beside the frozen global one, never sent) | ditto "
        "(fine-tuning with a proximal pull towards the global adapter, Li et al. ICML 2021) | "
        "interpolate (per-user mixture of fine-tuned and global predictions, weight fitted on "
        "the user's held-back lines)."),
      F("rounds.personalize_compare", &C::personalize_compare,
        "At the final evaluation, also score every other personalization method (methods "
        "table)."),
      F("rounds.personal_rank", &C::personal_rank, "dual: rank of the private adapter."),
      F("rounds.ditto_mu", &C::ditto_mu, "ditto: weight mu of (mu/2)||v - global||^2."),
      F("rounds.interpolate_with", &C::interpolate_with,
        "interpolate: the personal side of the mixture: finetune (the global adapter "
        "fine-tuned) | dual (global adapter frozen + a private rank-rounds.personal_rank "
        "adapter)."),
      F("rounds.interpolate_fit", &C::interpolate_fit,
        "interpolate: fit each user's weight on the held-back lines by keystrokes (keystroke "
        "savings, then loss) | loss (mean next-token loss) | pooled (one weight for the whole "
        "group, by keystroke savings summed over every user's held-back lines)."),
      // [local]
      F("local.mode", &C::train_mode,
        "auto (batched at hidden size 128 or less, where it measured faster; sequential above) | "
        "batched (many devices per pass, same result) | sequential (one device at a time)."),
      F("local.steps", &C::local_steps,
        "Local optimizer steps per device per round; 0 = use "
        "local.epochs."),
      F("local.epochs", &C::local_epochs,
        "Local epochs over the device's text (when local.steps "
        "= 0)."),
      F("local.batch", &C::local_batch, "Local batch size (sequences)."),
      F("local.seq_len", &C::seq_len, "Tokens per training sequence."),
      F("local.optimizer", &C::local_optimizer, "adamw | sgd."),
      F("local.lr", &C::local_lr, "Local learning rate."),
      F("local.clip", &C::local_clip, "Per-step gradient-norm clipping; 0 = off."),
      F("local.max_group", &C::max_group, "Devices trained together in one batched pass."),
      F("local.workers", &C::workers,
        "Training threads, each taking whole groups with single-threaded BLAS (0 = one per core)."),
      // [lora]
      F("lora.rank", &C::rank, "LoRA rank r."),
      F("lora.method", &C::lora_method,
        "lora: A and B train and are shared. ffa: FFA-LoRA (Sun et al., ICLR 2024): A stays at "
        "its seeded random init everywhere, only B trains and is shared, noised and "
        "aggregated (half the upload). fedsa: FedSA-LoRA (Guo et al., ICLR 2025): A trains "
        "and is shared, each device keeps its own B across rounds (never sent); the global "
        "adapter's B stays zero, so 'federated' equals the base and personalization starts "
        "from the user's own B."),
      F("lora.alpha", &C::alpha, "LoRA alpha (scaling alpha / r)."),
      F("lora.targets", &C::targets,
        "Comma list of projections: q_proj k_proj v_proj o_proj gate_proj up_proj down_proj."),
      // [server]
      F("server.optimizer", &C::server_optimizer, "fedavg | fedadam | fedyogi (Reddi et al.)."),
      F("server.lr", &C::server_lr, "Server learning rate."),
      F("server.beta1", &C::server_beta1, "Server first-moment decay (fedadam/fedyogi)."),
      F("server.beta2", &C::server_beta2, "Server second-moment decay (fedadam/fedyogi)."),
      F("server.eps", &C::server_eps, "Server adaptivity tau (fedadam/fedyogi)."),
      // [privacy]
      F("privacy.dp", &C::dp,
        "none | central (server adds Gaussian noise) | distributed (devices add discrete "
        "Gaussian noise under secure aggregation)."),
      F("privacy.noise_multiplier", &C::noise_multiplier,
        "Noise standard deviation / clip (of the sum); must be > 0 unless dp = none."),
      F("privacy.clip_mode", &C::clip_mode, "fixed | adaptive (quantile-tracking clip bound)."),
      F("privacy.clip", &C::clip, "L2 bound of each update (the initial bound when adaptive)."),
      F("privacy.target_quantile", &C::target_quantile,
        "Adaptive clipping: fraction of updates meant to be unclipped."),
      F("privacy.clip_lr", &C::clip_lr, "Adaptive clipping: geometric learning rate."),
      F("privacy.delta", &C::delta,
        "Target delta; 0 = min(1e-5, devices^-1.1), privacy/defaults.h."),
      F("privacy.epsilon_budget", &C::epsilon_budget,
        "Stop before epsilon exceeds this; 0 = no budget."),
      F("privacy.bits", &C::bits, "Secure aggregation modulus 2^bits, in [8, 32]."),
      F("privacy.min_survivors", &C::min_survivors,
        "Distributed DP: noise calibrated for this fraction of the cohort surviving, in (0, 1]; a "
        "round with fewer survivors is aborted before unmasking."),
      F("privacy.modclip_prob", &C::modclip_prob,
        "Distributed DP: tolerated probability of a modular wrap-around, in (0, 1)."),
      // [secagg]
      F("secagg.graph", &C::graph,
        "complete (Bonawitz et al.) | kregular (SecAgg+, sparse random k-regular graph)."),
      F("secagg.dropout_advertise", &C::dropout_advertise,
        "Per-device dropout probability while advertising keys, in [0, 1)."),
      F("secagg.dropout_share", &C::dropout_share,
        "Per-device dropout probability while sharing keys, in [0, 1)."),
      F("secagg.dropout_masked", &C::dropout_masked,
        "Per-device dropout probability before sending the masked input, in [0, 1)."),
      F("secagg.dropout_unmask", &C::dropout_unmask,
        "Per-device dropout probability while unmasking, in [0, 1)."),
      F("secagg.speed_sigma", &C::speed_sigma, "Log-normal sigma of simulated device speed."),
      F("secagg.deadline", &C::deadline,
        "Round deadline in simulated seconds (slower devices drop); 0 = none."),
      F("secagg.max_shard_size", &C::max_shard_size,
        "Sharded secure aggregation: a round of n sampled devices runs as ceil(n / S) sessions, "
        "each device's noise calibrated for its shard's minimum; 0 = one session, else >= 3. "
        "Coordinator engines only (rounds.engine = coordinator, or run.transport = grpc)."),
      // [output]
      F("output.json", &C::json, "Print the final summary as JSON on stdout."),
      F("output.progress", &C::progress, "Show a progress bar on a terminal."),
      F("output.plots", &C::plots, "Draw loss.png, accuracy.png and epsilon.png with gnuplot."),
  };
  return *fields;
}

const Field* FindField(absl::string_view key) {
  for (const Field& f : Fields()) {
    if (key == f.key) return &f;
  }
  return nullptr;
}

}  // namespace

namespace internal {

bool SetKnownKey(const std::string& key, const std::string& value, SimConfig* config,
                 std::string* problem) {
  const Field* f = FindField(key);
  if (f == nullptr) return false;
  *problem = f->parse(value, config);
  return true;
}

std::string ValueText(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {
    std::vector<std::string> parts;
    for (const auto& item : v) parts.push_back(ValueText(item));
    return absl::StrJoin(parts, ",");
  }
  return v.dump();
}

}  // namespace internal

nlohmann::json ConfigToJson(const SimConfig& config) {
  nlohmann::json j = nlohmann::json::object();
  for (const Field& f : Fields()) j[f.key] = f.get(config);
  return j;
}

std::vector<ConfigKeyDoc> ConfigKeys() {
  const SimConfig defaults;
  std::vector<ConfigKeyDoc> docs;
  for (const Field& f : Fields()) {
    docs.push_back({f.key, internal::ValueText(f.get(defaults)), f.doc});
  }
  return docs;
}

std::string ConfigToIni(const SimConfig& config) {
  std::string out =
      "# fedlora sim configuration: every key with its value (reference: docs/sim.md).\n"
      "# Use it with: fedlora sim --config FILE\n";
  std::string section;
  for (const Field& f : Fields()) {
    const std::string key = f.key;
    const std::string sec = key.substr(0, key.find('.'));
    if (sec != section) {
      section = sec;
      absl::StrAppend(&out, "\n[", section, "]\n");
    }
    std::string value = internal::ValueText(f.get(config));
    if (value.empty() || value.find_first_of("#;") != std::string::npos)
      value = "\"" + value + "\"";
    absl::StrAppend(&out, "# ", f.doc, "\n", key.substr(sec.size() + 1), " = ", value, "\n");
  }
  return out;
}

}  // namespace fedlora::sim
