// Model and on-device training throughput for the ~30M-parameter config (hidden 512, 8 layers,
// 8 heads, vocab 8000, context 256), beside the machine's measured float32 matmul peak.
//   bench_model [--json] [--batch B] [--seq T] [--iters N] [--threads N] [--torch-threads N]
// Figures: forward tokens/s, LoRA training tokens/s (rank 8 on q,v and on all seven
// projections; windows of 128 predicted tokens, batch 4, as the peer), achieved GFLOP/s as a
// fraction of the matmul peak, and peak RSS; beside the same training loop in PyTorch eager
// (../shared/peers/pytorch_per_client.py --hidden 512 --layers 8 --heads 8 --ff 1376
// --vocab 8000 --cohort 5 --rounds 1), run in the same invocation (--no-peer skips it).
#include <sys/resource.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

#include "fedlora/adapters/lora_adapter.h"
#include "fedlora/device/trainer.h"
#include "fedlora/model/llama.h"
#include "fedlora/model/threads.h"
#include "nlohmann/json.hpp"
#include "peer.h"

namespace {

using Clock = std::chrono::steady_clock;
double Secs(Clock::time_point a) { return std::chrono::duration<double>(Clock::now() - a).count(); }

double PeakRssMb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;
}

// float32 GEMM GFLOP/s at n x n x n (best of a few runs).
double MatmulPeak(int64_t n) {
  torch::Tensor a = torch::randn({n, n}), b = torch::randn({n, n});
  torch::Tensor c = torch::mm(a, b);
  double best = 0;
  for (int r = 0; r < 5; ++r) {
    auto t0 = Clock::now();
    c = torch::mm(a, b);
    double s = Secs(t0);
    best = std::max(best, 2.0 * n * n * n / s / 1e9);
  }
  return best;
}

// Forward FLOPs per token: 2 x (non-embedding matmul parameters + lm_head) + attention.
double ForwardFlopsPerToken(const fedlora::model::LlamaConfig& c, int64_t seq) {
  double d = c.hidden_size, hd = c.head_dim;
  double proj = d * c.num_attention_heads * hd * 2 + d * c.num_key_value_heads * hd * 2 +
                3 * d * c.intermediate_size;
  double attn = 2.0 * c.num_attention_heads * hd * seq;  // QK^T and PV, averaged causal ~ seq/2 x2
  return 2.0 * (c.num_hidden_layers * proj + c.vocab_size * d) + c.num_hidden_layers * attn;
}

}  // namespace

int main(int argc, char** argv) {
  bool json = false, peer = true;
  int64_t batch = 4, seq = 256, iters = 5;
  int threads = 0, torch_threads = 1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::stoll(argv[++i]) : 0; };
    if (a == "--json")
      json = true;
    else if (a == "--no-peer")
      peer = false;
    else if (a == "--batch")
      batch = next();
    else if (a == "--seq")
      seq = next();
    else if (a == "--iters")
      iters = next();
    else if (a == "--threads")
      threads = static_cast<int>(next());
    else if (a == "--torch-threads")
      torch_threads = static_cast<int>(next());
    else {
      std::fprintf(stderr, "unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  std::string thread_desc = fedlora::model::ConfigureThreads({threads, torch_threads});
  torch::manual_seed(0);
  const double peak = MatmulPeak(1024);

  fedlora::model::LlamaConfig c;
  c.vocab_size = 8000;
  c.hidden_size = 512;
  c.num_hidden_layers = 8;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 8;
  c.head_dim = 64;
  c.intermediate_size = 1376;
  c.max_position_embeddings = seq;
  c.tie_word_embeddings = true;
  auto model = fedlora::model::LlamaModel::RandomInit(c, 1);
  torch::Tensor ids = torch::randint(0, c.vocab_size, {batch, seq}, torch::kInt64);
  const double fpt = ForwardFlopsPerToken(c, seq);

  nlohmann::json out = {{"threads", thread_desc},
                        {"matmul_peak_gflops", peak},
                        {"params", c.NumParameters()},
                        {"batch", batch},
                        {"seq", seq}};
  {
    torch::NoGradGuard ng;
    model.Forward(ids);  // warm-up
    auto t0 = Clock::now();
    for (int64_t i = 0; i < iters; ++i) model.Forward(ids);
    double s = Secs(t0);
    double tps = batch * seq * iters / s;
    out["forward"] = {{"tokens_per_s", tps},
                      {"gflops", tps * fpt / 1e9},
                      {"fraction_of_peak", tps * fpt / 1e9 / peak}};
  }
  auto bench_lora = [&](std::vector<fedlora::model::Proj> targets) {
    fedlora::adapters::LoraConfig lc;
    lc.rank = 8;
    lc.alpha = 16;
    lc.targets = targets;
    auto adapter = fedlora::adapters::LoraAdapter::Create(c, lc, 1);
    if (!adapter.ok()) {
      std::fprintf(stderr, "%s\n", adapter.status().ToString().c_str());
      std::exit(1);
    }
    (void)adapter->Attach(model);
    adapter->SetTrainable(true);
    fedlora::device::TokenWindows w;
    // As the peer: windows of 129 tokens (128 predictions), batch 4.
    w.ids = torch::randint(0, c.vocab_size, {4 * (iters + 1), 129}, torch::kInt64);
    w.mask = torch::ones_like(w.ids);
    fedlora::device::TrainOptions to;
    to.batch_size = 4;
    to.max_steps = 1;
    auto warm = fedlora::device::Train(model, adapter->Parameters(), w, to);  // warm-up step
    to.max_steps = iters;
    auto st = fedlora::device::Train(model, adapter->Parameters(), w, to);
    adapter->Detach(model);
    double tps = 4.0 * 128 * iters / st->seconds;  // predicted tokens per second
    // Backward through frozen weights costs one more forward-sized product (input grads).
    double flops = 2.0 * ForwardFlopsPerToken(c, 128);
    return nlohmann::json{{"tokens_per_s", tps},
                          {"gflops", tps * flops / 1e9},
                          {"fraction_of_peak", tps * flops / 1e9 / peak},
                          {"trainable_params", adapter->NumParameters()}};
  };
  using P = fedlora::model::Proj;
  out["lora_train_qv_r8"] = bench_lora({P::kQ, P::kV});
  out["lora_train_all7_r8"] = bench_lora({P::kQ, P::kK, P::kV, P::kO, P::kGate, P::kUp, P::kDown});
  out["peak_rss_mb"] = PeakRssMb();
  if (peer) {
    nlohmann::json pj = fedlora::bench::RunPytorchPeer(
        "--hidden 512 --layers 8 --heads 8 --ff 1376 --vocab 8000 --cohort 5 --rounds 1");
    if (pj.contains("tokens_per_s")) {
      double tps = pj["tokens_per_s"].get<double>();
      double g = tps * 2.0 * ForwardFlopsPerToken(c, 128) / 1e9;
      pj["gflops"] = g;
      pj["fraction_of_peak"] = g / peak;
      out["lora_qv_speedup_vs_peer"] = out["lora_train_qv_r8"]["tokens_per_s"].get<double>() / tps;
    }
    out["peer_pytorch_qv_r8"] = pj;
  }
  if (json) {
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("threads            %s\nmatmul peak        %.1f GFLOP/s\nparameters         %lld\n",
                thread_desc.c_str(), peak, static_cast<long long>(c.NumParameters()));
    for (const char* k :
         {"forward", "lora_train_qv_r8", "lora_train_all7_r8", "peer_pytorch_qv_r8"}) {
      if (!out.contains(k) || !out[k].contains("gflops")) continue;
      std::printf("%-18s %8.0f tokens/s  %6.1f GFLOP/s  %4.0f%% of peak\n", k,
                  out[k]["tokens_per_s"].get<double>(), out[k]["gflops"].get<double>(),
                  100 * out[k]["fraction_of_peak"].get<double>());
    }
    std::printf("peak RSS           %.0f MB\n", out["peak_rss_mb"].get<double>());
  }
  return 0;
}
