// Simulator throughput: device-rounds per second, batched vs sequential local training, beside
// the per-client PyTorch loop a Flower user would run (../shared/peers/pytorch_per_client.py,
// same configs, run in the same invocation), and peak RSS of a 1,000-device population.
//
//   bench_sim [--json] [--rounds R] [--cohort N] [--no-peer] [--rss-devices N --rss-rounds R]
//
// Configs (as the simulator issue names them):
//   a: hidden 256, 4 layers, 4 heads, ff 688, vocab 2048, LoRA r=8 on q,v,
//      1024 tokens per device per round (batch 4 x 128, 2 steps), cohort 100
//   b: hidden 128, 2 layers, 4 heads, ff 344, vocab 1024, 256 tokens per device (batch 2 x 128)
// Each device: load the global adapter, train with AdamW, take the delta, clip it, add noise,
// accumulate: the same work as the peer.
#include <sys/resource.h>
#include <torch/types.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "fedlora/adapters/lora_adapter.h"
#include "fedlora/model/llama.h"
#include "fedlora/model/threads.h"
#include "fedlora/privacy/gaussian_noise.h"
#include "fedlora/sim/cohort_trainer.h"
#include "fedlora/sim/simulator.h"
#include "nlohmann/json.hpp"
#include "peer.h"

namespace {

using Clock = std::chrono::steady_clock;
double Secs(Clock::time_point a) { return std::chrono::duration<double>(Clock::now() - a).count(); }

struct BenchConfig {
  std::string name;
  int64_t hidden, layers, heads, ff, vocab, tokens, batch, seq;
  int cohort;
};

double CurrentRssMb() {
  std::ifstream in("/proc/self/statm");
  long pages = 0, resident = 0;
  in >> pages >> resident;
  return resident * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1 << 20);
}

double PeakRssMb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;
}

// Device-rounds per second of our simulator's local step + privacy work for one config.
nlohmann::json RunOurs(const BenchConfig& b, fedlora::sim::TrainMode mode, int rounds, int group,
                       int workers) {
  fedlora::model::LlamaConfig c;
  c.vocab_size = b.vocab;
  c.hidden_size = b.hidden;
  c.num_hidden_layers = b.layers;
  c.num_attention_heads = b.heads;
  c.num_key_value_heads = b.heads;
  c.head_dim = b.hidden / b.heads;
  c.intermediate_size = b.ff;
  c.max_position_embeddings = b.seq + 1;
  c.tie_word_embeddings = true;
  auto model = fedlora::model::LlamaModel::RandomInit(c, 0);
  fedlora::adapters::LoraConfig lc;
  lc.rank = 8;
  lc.alpha = 16;
  auto init = fedlora::adapters::LoraAdapter::Create(c, lc, 0);
  std::vector<float> global = init->Flatten();
  // Per device: tokens / seq windows of seq + 1 tokens (seq predictions each, as the peer).
  std::vector<fedlora::device::TokenWindows> data(b.cohort);
  for (auto& w : data) {
    w.ids = torch::randint(0, b.vocab, {b.tokens / b.seq, b.seq + 1}, torch::kInt64);
    w.mask = torch::ones_like(w.ids);
  }
  std::vector<const fedlora::device::TokenWindows*> ptrs;
  std::vector<uint64_t> seeds;
  for (int i = 0; i < b.cohort; ++i) {
    ptrs.push_back(&data[i]);
    seeds.push_back(i);
  }
  fedlora::device::TrainOptions o;
  o.optimizer.lr = 1e-3;
  o.batch_size = b.batch;
  o.max_steps = (b.tokens / b.seq + b.batch - 1) / b.batch;
  fedlora::SeededRandom rng(uint64_t{0});
  auto round = [&] {
    auto r = fedlora::sim::TrainCohort(model, lc, global, ptrs, seeds, o, mode, group, workers);
    std::vector<float> acc(global.size(), 0.0f);
    for (auto& d : r->deltas) {
      (void)fedlora::privacy::ClipAndAddLocalNoise(d, 0.1, 0.01, rng);
      for (size_t j = 0; j < acc.size(); ++j) acc[j] += d[j];
    }
    for (size_t j = 0; j < acc.size(); ++j) global[j] += acc[j] / b.cohort;
  };
  round();  // warm-up
  auto t0 = Clock::now();
  for (int i = 0; i < rounds; ++i) round();
  double s = Secs(t0);
  double dr = static_cast<double>(rounds) * b.cohort / s;
  return {{"device_rounds_per_s", dr}, {"tokens_per_s", dr * b.tokens}, {"seconds", s}};
}

nlohmann::json RunPeer(const BenchConfig& b, int rounds) {
  return fedlora::bench::RunPytorchPeer(
      "--hidden " + std::to_string(b.hidden) + " --layers " + std::to_string(b.layers) +
      " --heads " + std::to_string(b.heads) + " --ff " + std::to_string(b.ff) + " --vocab " +
      std::to_string(b.vocab) + " --tokens " + std::to_string(b.tokens) + " --batch " +
      std::to_string(b.batch) + " --seq " + std::to_string(b.seq) + " --cohort " +
      std::to_string(b.cohort) + " --rounds " + std::to_string(rounds));
}

}  // namespace

int main(int argc, char** argv) {
  bool json = false, peer = true;
  int group = 8, workers = 0;
  int rounds = 2, rss_devices = 1000, rss_rounds = 20, torch_threads = 1, blas_threads = 0;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::atoi(argv[++i]) : 0; };
    if (a == "--json")
      json = true;
    else if (a == "--no-peer")
      peer = false;
    else if (a == "--rounds")
      rounds = next();
    else if (a == "--group")
      group = next();
    else if (a == "--workers")
      workers = next();
    else if (a == "--torch-threads")
      torch_threads = next();
    else if (a == "--threads")
      blas_threads = next();
    else if (a == "--rss-devices")
      rss_devices = next();
    else if (a == "--rss-rounds")
      rss_rounds = next();
    else if (a == "--only")
      only = i + 1 < argc ? argv[++i] : "";
    else {
      std::fprintf(stderr, "unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  std::string threads = fedlora::model::ConfigureThreads({blas_threads, torch_threads});
  nlohmann::json out = {{"threads", threads}, {"group", group}, {"workers", workers}};
  std::vector<BenchConfig> configs = {{"a", 256, 4, 4, 688, 2048, 1024, 4, 128, 100},
                                      {"b", 128, 2, 4, 344, 1024, 256, 2, 128, 100}};
  for (const auto& b : configs) {
    if (!only.empty() && only != b.name && only != "rss") continue;
    if (only == "rss") break;
    nlohmann::json r;
    r["batched"] = RunOurs(b, fedlora::sim::TrainMode::kBatched, rounds, group, workers);
    r["sequential"] = RunOurs(b, fedlora::sim::TrainMode::kSequential, rounds, group, workers);
    // What the simulator's default (local.mode = auto) runs at this config's size.
    fedlora::model::LlamaConfig size;
    size.hidden_size = b.hidden;
    r["auto_mode"] = fedlora::sim::ResolveTrainMode(fedlora::sim::TrainMode::kAuto, size) ==
                             fedlora::sim::TrainMode::kBatched
                         ? "batched"
                         : "sequential";
    if (peer) r["peer"] = RunPeer(b, rounds);
    if (r.contains("peer") && r["peer"].contains("device_rounds_per_s")) {
      r["batched_speedup_vs_peer"] = r["batched"]["device_rounds_per_s"].get<double>() /
                                     r["peer"]["device_rounds_per_s"].get<double>();
      r["auto_speedup_vs_peer"] =
          r[r["auto_mode"].get<std::string>()]["device_rounds_per_s"].get<double>() /
          r["peer"]["device_rounds_per_s"].get<double>();
    }
    out[b.name] = r;
    if (!json) std::fprintf(stderr, "config %s: %s\n", b.name.c_str(), r.dump().c_str());
  }
  if (only.empty() || only == "rss") {
    // Memory: a 1,000-device population over 20 rounds of the default simulation.
    fedlora::sim::SimConfig c;
    c.devices = rss_devices;
    c.rounds = rss_rounds;
    c.cohort = 50;
    c.eval_every = rss_rounds;
    c.eval_users = 10;
    c.personalize_steps = 2;
    c.out = (std::filesystem::temp_directory_path() / "fedlora_bench_rss").string();
    c.progress = false;
    c.pretrain_steps = 50;
    double before = CurrentRssMb();
    auto sim = fedlora::sim::Simulator::Create(c);
    if (!sim.ok()) {
      std::fprintf(stderr, "%s\n", sim.status().ToString().c_str());
      return 1;
    }
    double after_setup = CurrentRssMb();
    std::vector<double> per_round;
    auto r =
        (*sim)->Run([&](const fedlora::sim::RoundRecord&) { per_round.push_back(CurrentRssMb()); });
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
      return 1;
    }
    double adapter_mb = r->global_adapter.size() * 4.0 / (1 << 20);
    out["rss"] = {{"devices", rss_devices},
                  {"rounds", rss_rounds},
                  {"rss_before_mb", before},
                  {"rss_after_setup_mb", after_setup},
                  {"rss_per_round_mb", per_round},
                  {"peak_rss_mb", PeakRssMb()},
                  {"adapter_mb", adapter_mb},
                  {"budget_mb", after_setup + rss_devices * 4 * adapter_mb + 500},
                  {"growth_first_to_last_mb", per_round.back() - per_round.front()}};
  }
  if (json) {
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("%s\n", out.dump(2).c_str());
  }
  return 0;
}
