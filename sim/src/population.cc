// Building the simulation: base model (loaded or pretrained on public text), dataset,
// training population and held-out users, each device's token windows and speed.
#include "fedlora/data/population.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/random.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/data/load.h"
#include "fedlora/data/personas.h"
#include "fedlora/compress/checkpoint.h"
#include "fedlora/compress/compress_model.h"
#include "fedlora/compress/int8_compute.h"
#include "fedlora/device/pretrain.h"
#include "fedlora/sim/cohort_trainer.h"
#include "sim_state.h"

namespace fedlora::sim {
namespace {

namespace fs = std::filesystem;

bool IsPersonas(const std::string& data) { return data.rfind("personas", 0) == 0; }

// Public text for pretraining: the personas' shared general language, or (for a real corpus)
// the held-out users' train text, never the federated population's.
absl::StatusOr<std::string> WritePublicCorpus(Simulator::State* s) {
  const SimConfig& c = s->config;
  FEDLORA_RETURN_IF_ERROR(MakeDirs(c.out));
  std::string path = (fs::path(c.out) / "public_corpus.txt").string();
  std::string text;
  if (IsPersonas(c.data)) {
    FEDLORA_ASSIGN_OR_RETURN(data::PersonaOptions po, data::ParsePersonaSpec(c.data));
    po.seed = DeriveSeed(po.seed, 0x5075626C6963ULL);  // a different stream: public
    text = data::PublicCorpus(po, c.pretrain_public_lines);
  } else {
    for (int u : s->heldout) {
      for (const auto& l : s->dataset.users[u].train) absl::StrAppend(&text, l, "\n");
    }
    if (text.empty()) {
      return absl::InvalidArgumentError(
          "model.model is empty and there are no held-out users to pretrain on (hint: pass "
          "--model DIR, or set data.heldout_fraction > 0)");
    }
  }
  FEDLORA_RETURN_IF_ERROR(WriteFileAtomic(path, text));
  return path;
}

// The public lexicon and word n-gram of the lexicon strip, from the public corpus the base
// was pretrained on (for a given --model: the same public text, rebuilt); written to
// <out>/public_ngram.txt, what would ship with the base model.
absl::Status BuildLexicon(Simulator::State* s) {
  FEDLORA_ASSIGN_OR_RETURN(std::string corpus, WritePublicCorpus(s));
  FEDLORA_ASSIGN_OR_RETURN(std::string text, ReadFileToString(corpus));
  const std::vector<std::string> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
  const device::KeyboardVocab kv = device::KeyboardVocab::FromTokenizer(*s->rt.tokenizer);
  device::WordNgram pub;
  pub.AddLines(*s->rt.tokenizer, kv, lines);
  FEDLORA_RETURN_IF_ERROR(WriteFileAtomic(
      (fs::path(s->config.out) / "public_ngram.txt").string(), pub.Serialize()));
  s->lexicon = std::make_shared<device::PublicLexicon>(pub, kv);
  device::StripWeights w;
  w.public_ngram = s->config.strip_public_weight;
  w.second_pieces = static_cast<int>(s->config.strip_second_pieces);
  w.second_piece_weight = s->config.strip_second_weight;
  s->public_strip = std::make_unique<device::WordStrip>(s->lexicon, nullptr, w);
  return absl::OkStatus();
}

// How a packed base multiplies (fedlora/compress/int8_compute.h), for the report.
absl::StatusOr<std::string> Arithmetic() {
  FEDLORA_ASSIGN_OR_RETURN(compress::Int8Mode mode, compress::Int8ModeFromEnv());
  if (!compress::Int8ComputeEnabled(mode)) return std::string("; products in float32");
  const std::string isa = compress::Int8ComputeIsa();
  return absl::StrCat("; int8 arithmetic (", isa.empty() ? "forced on" : isa, ")");
}

// Compresses the float base at s->model_dir into <out>/base-model-<method><bits> and points
// s->model_dir there: the devices then run the packed base, as a phone would.
absl::Status CompressBase(Simulator::State* s) {
  const SimConfig& c = s->config;
  if (c.compress == "none") {
    s->base_description = "float32";
    return absl::OkStatus();
  }
  if (compress::IsCompressedDir(s->model_dir)) {
    FEDLORA_ASSIGN_OR_RETURN(nlohmann::json info, compress::ReadCompressionJson(s->model_dir));
    FEDLORA_ASSIGN_OR_RETURN(std::string arithmetic, Arithmetic());
    s->base_description = absl::StrCat(info.value("method", std::string("?")), ", ",
                                       info.value("linear_bits_per_weight", 0.0),
                                       " bits per projection weight (given compressed)",
                                       arithmetic);
    return absl::OkStatus();
  }
  FEDLORA_ASSIGN_OR_RETURN(device::Runtime rt, device::LoadRuntime(s->model_dir));
  compress::CompressOptions o;
  o.method = c.compress;
  o.bits = c.compress_bits;
  o.group = c.compress_group;
  o.progress = false;
  if (o.method == "gptq" || o.method == "caldera") {
    // Calibration on public text only: never the federated users' text.
    FEDLORA_ASSIGN_OR_RETURN(std::string corpus, WritePublicCorpus(s));
    FEDLORA_ASSIGN_OR_RETURN(std::string text, ReadFileToString(corpus));
    o.calib_ids = rt.tokenizer->EncodeWithBos(text);
    o.calib.max_tokens = 8192;
  }
  FEDLORA_ASSIGN_OR_RETURN(compress::CompressReport report, compress::CompressModel(*rt.model, o));
  const std::string out =
      (fs::path(c.out) / absl::StrCat("base-model-", c.compress, c.compress_bits)).string();
  std::error_code ec;
  fs::remove_all(out, ec);  // our own output from an earlier run (run.out is ours)
  nlohmann::json info = {{"method", o.method},
                         {"options", {{"bits", o.bits}, {"group", o.group},
                                      {"calib", o.calib_ids.empty() ? "" : "public corpus"},
                                      {"calibration_tokens", report.calibration_tokens}}},
                         {"source", s->model_dir},
                         {"linear_bits_per_weight", report.bits_per_weight}};
  FEDLORA_RETURN_IF_ERROR(compress::SaveCompressedModel(*rt.model, s->model_dir, out, info));
  FEDLORA_ASSIGN_OR_RETURN(std::string arithmetic, Arithmetic());
  s->base_description = absl::StrFormat("%s %d-bit, group %d: %.3f bits per projection weight%s",
                                        o.method, o.bits, o.group, report.bits_per_weight,
                                        arithmetic);
  s->model_dir = out;
  return absl::OkStatus();
}

}  // namespace

absl::Status LoadPopulation(Simulator::State* s) {
  const SimConfig& c = s->config;
  // Dataset. For the synthetic personas, generate exactly enough users.
  std::string data_spec = c.data;
  int heldout_wanted = 0;
  if (IsPersonas(c.data) && c.devices > 0) {
    heldout_wanted =
        static_cast<int>(std::ceil(c.devices * c.heldout_fraction / (1 - c.heldout_fraction)));
    FEDLORA_ASSIGN_OR_RETURN(data::PersonaOptions po, data::ParsePersonaSpec(c.data));
    data_spec = absl::StrCat("personas:users=", c.devices + heldout_wanted, ",seed=", po.seed,
                             ",lines=", po.lines_per_user);
  }
  data::LoadOptions lo;
  if (c.data_format != "auto") {
    FEDLORA_ASSIGN_OR_RETURN(lo.format, data::ParseDataFormat(c.data_format));
  }
  lo.min_lines = c.min_lines;
  lo.test_fraction = c.test_fraction;
  FEDLORA_ASSIGN_OR_RETURN(s->dataset, data::LoadFederatedDataset(data_spec, lo));
  data::PopulationSplit split =
      data::SplitPopulation(s->dataset.users.size(), c.heldout_fraction, c.seed);
  if (c.devices > 0 && static_cast<int>(split.train_users.size()) > c.devices) {
    split.train_users.resize(c.devices);
  }
  if (c.devices > 0 && static_cast<int>(split.train_users.size()) < c.devices) {
    return absl::InvalidArgumentError(
        absl::StrCat("data.devices = ", c.devices, " but ", s->dataset.source, " has only ",
                     split.train_users.size(),
                     " training users after the held-out split (hint: lower "
                     "--devices or data.min_lines)"));
  }
  if (static_cast<int>(split.train_users.size()) < c.cohort) {
    return absl::InvalidArgumentError(absl::StrCat("rounds.cohort = ", c.cohort, " exceeds the ",
                                                   split.train_users.size(), " training devices"));
  }
  s->heldout = split.heldout_users;

  // Base model: given, or pretrained centrally on public text.
  s->model_dir = c.model;
  if (s->model_dir.empty()) {
    FEDLORA_ASSIGN_OR_RETURN(std::string corpus, WritePublicCorpus(s));
    device::PretrainOptions po;
    po.vocab_size = c.pretrain_vocab;
    po.hidden_size = c.pretrain_hidden;
    po.num_layers = c.pretrain_layers;
    po.num_heads = c.pretrain_heads;
    po.context = std::max<int64_t>(c.seq_len, 64);
    po.train.max_steps = c.pretrain_steps;
    po.train.batch_size = c.pretrain_batch;
    po.train.optimizer.lr = c.pretrain_lr;
    po.train.optimizer.schedule = device::OptimizerOptions::Schedule::kCosine;
    po.train.optimizer.warmup_steps = std::min<int64_t>(20, c.pretrain_steps / 10);
    po.train.optimizer.max_grad_norm = 1.0;
    po.train.seed = c.seed;
    po.train.progress = c.progress && !c.json;
    s->model_dir = (fs::path(c.out) / "base-model").string();
    FEDLORA_RETURN_IF_ERROR(device::Pretrain({corpus}, s->model_dir, po).status());
  }
  FEDLORA_RETURN_IF_ERROR(CompressBase(s));
  FEDLORA_ASSIGN_OR_RETURN(s->rt, device::LoadRuntime(s->model_dir));
  if (c.strip == "lexicon") FEDLORA_RETURN_IF_ERROR(BuildLexicon(s));

  // Devices: windows are cut once; speeds are log-normal around 1.
  SplitMix64 speed_rng(DeriveSeed(c.seed, 0x5eed));
  for (int u : split.train_users) {
    VirtualDevice d;
    d.user = u;
    d.windows = RepeatWindows(
        device::MakeWindows(*s->rt.tokenizer, s->dataset.users[u].train, c.seq_len), c.local_batch);
    if (d.windows.size() == 0) continue;  // a user with no training text cannot take part
    d.speed = std::exp(c.speed_sigma * speed_rng.StandardNormal());
    s->devices.push_back(std::move(d));
  }
  // Fixed evaluation samples, so metrics are comparable across rounds.
  SplitMix64 pick(DeriveSeed(c.seed, 0xE7A1));
  std::vector<int> idx(s->devices.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int>(i);
  pick.Shuffle(idx);
  idx.resize(std::min<size_t>(idx.size(), static_cast<size_t>(c.eval_users)));
  std::sort(idx.begin(), idx.end());
  s->eval_participants = idx;
  std::vector<int> held = s->heldout;
  pick.Shuffle(held);
  held.resize(std::min<size_t>(held.size(), static_cast<size_t>(c.eval_users)));
  std::sort(held.begin(), held.end());
  s->eval_heldout = held;
  return absl::OkStatus();
}

}  // namespace fedlora::sim
