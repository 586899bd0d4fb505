#include "sim_testutil.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "fedlora/data/personas.h"
#include "fedlora/model/checkpoint.h"
#include "fedlora/model/llama.h"
#include "fedlora/model/tokenizer.h"
#include "gtest/gtest.h"

namespace fedlora::sim {

namespace fs = std::filesystem;

// A tiny random model with a tokenizer trained on the personas' public text, made once.
const std::string& TinyModelDir() {
  static std::string dir = [] {
    fs::path d =
        fs::temp_directory_path() / ("fedlora_sim_test_model_" + std::to_string(::getpid()));
    fs::create_directories(d);
    data::PersonaOptions po;
    std::string corpus = (d / "public.txt").string();
    std::ofstream(corpus) << data::PublicCorpus(po, 1500);
    model::TokenizerTrainOptions to;
    to.vocab_size = 400;
    if (!model::TrainTokenizer({corpus}, (d / "tokenizer").string(), to).ok()) std::abort();
    auto tok = model::Tokenizer::Load((d / "tokenizer.model").string(), 1, 2);
    if (!tok.ok()) std::abort();
    model::LlamaConfig c;
    c.vocab_size = (*tok)->vocab_size();
    c.hidden_size = 32;
    c.intermediate_size = 64;
    c.num_hidden_layers = 1;
    c.num_attention_heads = 2;
    c.num_key_value_heads = 2;
    c.head_dim = 16;
    c.max_position_embeddings = 64;
    c.tie_word_embeddings = true;
    if (!model::SaveLlamaModel(model::LlamaModel::RandomInit(c, 7, 0.05), d.string()).ok())
      std::abort();
    return d.string();
  }();
  return dir;
}

SimConfig SmallConfig(const std::string& out) {
  SimConfig c;
  c.model = TinyModelDir();
  c.data = "personas:lines=20";
  c.devices = 12;
  c.cohort = 6;
  c.rounds = 2;
  c.eval_every = 2;
  c.eval_users = 4;
  c.personalize_steps = 2;
  c.local_steps = 2;
  c.local_batch = 2;
  c.seq_len = 32;
  c.rank = 2;
  c.alpha = 4;
  c.dropout_masked = 0;
  c.sampling = SamplingMode::kFixed;
  c.graph = GraphMode::kComplete;
  c.noise_multiplier = 0.5;
  c.out = (fs::temp_directory_path() / out).string();
  c.progress = false;
  return c;
}

SimConfig PoissonConfig(const std::string& out) {
  SimConfig c = SmallConfig(out);
  c.sampling = SamplingMode::kPoisson;
  c.eval_every = 100;  // only the final evaluation
  c.personalize_steps = 0;
  c.personalize_compare = false;
  fs::remove_all(c.out);
  return c;
}

absl::StatusOr<SimResult> RunSim(const SimConfig& c) {
  auto sim = Simulator::Create(c);
  if (!sim.ok()) return sim.status();
  return (*sim)->Run();
}

StoreView OpenStore(const SimConfig& c) {
  StoreView v;
  auto store = coordinator::OpenSqliteStore((fs::path(c.out) / "coordinator").string());
  EXPECT_TRUE(store.ok()) << store.status() << " (no coordinator store under " << c.out << ")";
  if (!store.ok()) return v;
  v.store = std::move(*store);
  auto rounds = v.store->ListRounds();
  auto charges = v.store->Charges();
  auto participants = v.store->ParticipantsByRound();
  EXPECT_TRUE(rounds.ok() && charges.ok() && participants.ok());
  for (const auto& r : *rounds) v.rounds[r.round] = r;
  for (const auto& ch : *charges) v.charged.insert(ch.round);
  v.participants = *participants;
  return v;
}

}  // namespace fedlora::sim
