// Model and on-device training throughput for the ~30M-parameter config (hidden 512, 8 layers,
// 8 heads, vocab 8000, context 256) or the keyboard-sized one (--config keyboard: hidden 256,
// 4 layers, 4 heads, vocab 2048), beside the machine's measured float32 matmul peak.
//   bench_model [--json] [--config 30m|keyboard] [--batch B] [--seq T] [--iters N]
//               [--threads N] [--torch-threads N] [--shards N] [--no-peer] [--profile]
//               [--float-gemm auto|openblas]
// Figures: forward tokens/s, LoRA training tokens/s (rank 8 on q,v and on all seven
// projections; windows of 128 predicted tokens, batch 4, as the peer) with libtorch's
// reference ops, with the fused kernels in one pass, and as a device trains (fused, the batch
// in --shards data-parallel parts, 0 = one per core; the variants timed in turn), achieved
// GFLOP/s as a fraction of the matmul peak, the tensor memory a training step adds at its
// peak, peak RSS, and one line per fused kernel; beside the same training loop in PyTorch
// eager (../shared/peers/pytorch_per_client.py with the same config), with the
// same OpenBLAS kernels and as installed, in the same invocation (--no-peer skips it).
// --profile adds libtorch's self time per op of the training steps. --float-gemm picks where
// the default rows' frozen products run (model/float_gemm.h); a `_openblas` twin row always
// runs them on OpenBLAS, for the difference in the same run. The "GEMMs of a step alone"
// lines are the ceiling: a step's matrix products with nothing else (bench/gemm_ceiling.h).
#include <sys/resource.h>
#include <torch/types.h>
#include <torch/utils.h>
#include <torch/autograd.h>
#include <torch/nn/functional/loss.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "fedlora/adapters/lora_adapter.h"
#include "fedlora/device/trainer.h"
#include "fedlora/model/float_gemm.h"
#include "fedlora/model/fused_ops.h"
#include "fedlora/model/llama.h"
#include "fedlora/model/threads.h"
#include "nlohmann/json.hpp"
#include "alloc_tracker.h"
#include "gemm_ceiling.h"
#include "op_profile.h"
#include "peer.h"

namespace {

using Clock = std::chrono::steady_clock;
double Secs(Clock::time_point a) { return std::chrono::duration<double>(Clock::now() - a).count(); }

double PeakRssMb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;
}

// Seconds per call of fn (fastest of `reps` after a warm-up).
double TimeIt(const std::function<void()>& fn, int reps = 5) {
  fn();
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    auto t0 = Clock::now();
    fn();
    best = std::min(best, Secs(t0));
  }
  return best;
}

// Forward + backward of each fused kernel against libtorch's reference ops at the config's
// training shapes (batch 4 x 128 tokens): milliseconds per call and the speedup.
nlohmann::json KernelLines(const fedlora::model::LlamaConfig& c, int64_t tokens) {
  using namespace fedlora::model;
  const int64_t d = c.hidden_size, ff = c.intermediate_size, hd = c.head_dim;
  const int64_t h = c.num_attention_heads, n = 4, t = tokens / 4;
  auto grad_of = [](const torch::Tensor& out, const std::vector<torch::Tensor>& in) {
    torch::autograd::grad({out.sum()}, in);
  };
  nlohmann::json k;
  auto line = [&](const char* name, const std::function<void()>& ref,
                  const std::function<void()>& fused) {
    const double r = TimeIt(ref) * 1e3, f = TimeIt(fused) * 1e3;
    k[name] = {{"reference_ms", r}, {"fused_ms", f}, {"speedup", r / f}};
  };
  {
    torch::Tensor x = torch::randn({n, t, d}).requires_grad_(true), w = torch::ones({d});
    line("rmsnorm", [&] {
      grad_of(w * (x * torch::rsqrt(x.pow(2).mean(-1, true) + 1e-5)), {x});
    }, [&] { grad_of(FusedRmsNorm(x, w, 1e-5), {x}); });
  }
  {
    torch::Tensor x = torch::randn({n, t, h, hd}).requires_grad_(true);
    torch::Tensor f = torch::rand({t, hd / 2});
    torch::Tensor e = torch::cat({f, f}, -1), cs = e.cos(), sn = e.sin();
    line("rope", [&] {
      torch::Tensor q = x.transpose(1, 2);
      torch::Tensor rot = torch::cat({-q.narrow(3, hd / 2, hd / 2), q.narrow(3, 0, hd / 2)}, 3);
      grad_of(q * cs + rot * sn, {x});
    }, [&] { grad_of(FusedRope(x, cs, sn).transpose(1, 2), {x}); });
  }
  {
    // Attention as the model ran it before (heads transposed out, baddbmm with the mask,
    // softmax, bmm, transposed back) against the fused kernel on [N, T, H, D].
    torch::Tensor q = torch::randn({n, t, h, hd}).requires_grad_(true);
    torch::Tensor kk = torch::randn({n, t, h, hd}).requires_grad_(true);
    torch::Tensor v = torch::randn({n, t, h, hd}).requires_grad_(true);
    torch::Tensor mask = torch::zeros({1, 1, t, t}).masked_fill(
        torch::ones({t, t}).triu(1).to(torch::kBool), -std::numeric_limits<float>::infinity());
    const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
    line("attention", [&] {
      torch::Tensor q3 = q.transpose(1, 2).reshape({n * h, t, hd});
      torch::Tensor k3 = kk.transpose(1, 2).reshape({n * h, t, hd});
      torch::Tensor v3 = v.transpose(1, 2).reshape({n * h, t, hd});
      torch::Tensor s = at::baddbmm(mask.reshape({1, t, t}).expand({n * h, t, t}), q3,
                                    k3.transpose(1, 2), 1.0, scale);
      torch::Tensor o = at::bmm(torch::softmax(s, -1), v3).view({n, h, t, hd});
      grad_of(o.transpose(1, 2).reshape({n, t, h * hd}), {q, kk, v});
    }, [&] { grad_of(FusedAttention(q, kk, v, mask, scale), {q, kk, v}); });
  }
  {
    torch::Tensor g = torch::randn({n, t, ff}).requires_grad_(true);
    torch::Tensor u = torch::randn({n, t, ff}).requires_grad_(true);
    line("swiglu", [&] { grad_of(torch::silu(g) * u, {g, u}); },
         [&] { grad_of(FusedSwiGlu(g, u), {g, u}); });
  }
  {
    torch::Tensor hid = torch::randn({tokens, d}).requires_grad_(true);
    torch::Tensor w = torch::randn({c.vocab_size, d}) * 0.02;
    torch::Tensor tg = torch::randint(0, c.vocab_size, {tokens}, torch::kInt64);
    line("lm_head_cross_entropy", [&] {
      grad_of(torch::nn::functional::cross_entropy(
                  at::linear(hid, w), tg,
                  torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone)),
              {hid});
    }, [&] { grad_of(FusedLinearCrossEntropy(hid, w, tg), {hid}); });
  }
  {
    // A shard's frozen products (one per core, so half the rows on two cores): every
    // projection's forward and input gradient, one thread, libtorch's mm (OpenBLAS) against
    // FrozenGemm (oneDNN where float_gemm.h sends them).
    ScopedBlasThreads single(1);
    const int64_t rows = tokens / std::max(1, NumCores());
    std::vector<std::pair<torch::Tensor, torch::Tensor>> xw;  // (x, W [out, in])
    for (auto [in, out] : std::vector<std::pair<int64_t, int64_t>>{
             {d, h * hd}, {d, h * hd}, {d, h * hd}, {h * hd, d}, {d, ff}, {d, ff}, {ff, d}}) {
      xw.emplace_back(torch::randn({rows, in}), torch::randn({out, in}));
    }
    std::vector<torch::Tensor> dy;
    for (auto& [x, w] : xw) dy.push_back(torch::randn({rows, w.size(0)}));
    line("frozen_products", [&] {
      for (size_t i = 0; i < xw.size(); ++i) {
        torch::mm(xw[i].first, xw[i].second.t());
        torch::mm(dy[i], xw[i].second);
      }
    }, [&] {
      for (size_t i = 0; i < xw.size(); ++i) {
        FrozenGemm(xw[i].first, xw[i].second, true);
        FrozenGemm(dy[i], xw[i].second, false);
      }
    });
  }
  return k;
}

// The machine's float32 GEMM GFLOP/s at n x n x n: the better of libtorch's mm on every core
// (threaded OpenBLAS) and a single-threaded product per core, all at once, through the frozen
// products' own path (oneDNN's brgemm where it has it, else OpenBLAS). Best of a few runs of
// each, so a fraction of it is a fraction of the fastest arrangement either library offers.
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
  const int cores = fedlora::model::NumCores();
  fedlora::model::ScopedBlasThreads single(1);
  std::vector<torch::Tensor> as, bs;
  for (int t = 0; t < cores; ++t) {
    as.push_back(torch::randn({n, n}));
    bs.push_back(torch::randn({n, n}));
    fedlora::model::FrozenGemm(as[t], bs[t], false);  // warm-up: the primitive, the buffers
  }
  for (int r = 0; r < 3; ++r) {
    std::vector<std::thread> threads;
    auto t0 = Clock::now();
    for (int t = 0; t < cores; ++t) {
      threads.emplace_back([&, t] { fedlora::model::FrozenGemm(as[t], bs[t], false); });
    }
    for (auto& th : threads) th.join();
    best = std::max(best, cores * 2.0 * n * n * n / Secs(t0) / 1e9);
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
  bool json = false, peer = true, profile = false;
  int64_t batch = 4, seq = 256, iters = 0;  // 0: 5 steps per timed run on 30M, 20 on keyboard
  // The frozen products of the default (sharded) rows: float_gemm.h's choice unless
  // --float-gemm says otherwise; the `_openblas` twin row is always OpenBLAS.
  fedlora::model::FloatGemm default_variant_gemm = fedlora::model::FloatGemm::kAuto;
  int threads = 0, torch_threads = 1, shards = 0;
  std::string config_name = "30m";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::stoll(argv[++i]) : 0; };
    if (a == "--json")
      json = true;
    else if (a == "--float-gemm") {
      const std::string g = i + 1 < argc ? argv[++i] : "";
      if (g != "auto" && g != "openblas") {
        std::fprintf(stderr, "--float-gemm takes auto or openblas\n");
        return 2;
      }
      default_variant_gemm = g == "openblas" ? fedlora::model::FloatGemm::kOpenBlas
                                             : fedlora::model::FloatGemm::kAuto;
    } else if (a == "--no-peer")
      peer = false;
    else if (a == "--profile")
      profile = true;
    else if (a == "--batch")
      batch = next();
    else if (a == "--seq")
      seq = next();
    else if (a == "--iters")
      iters = next();
    else if (a == "--threads")
      threads = static_cast<int>(next());
    else if (a == "--config")
      config_name = i + 1 < argc ? argv[++i] : "";
    else if (a == "--shards")
      shards = static_cast<int>(next());
    else if (a == "--torch-threads")
      torch_threads = static_cast<int>(next());
    else {
      std::fprintf(stderr, "unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  // Counts tensor bytes from here on: the training step's own peak (activations, gradients,
  // optimizer state) beside the speed.
  fedlora::bench::TrackingCpuAllocator* tracker = fedlora::bench::TrackingCpuAllocator::Install();
  std::string thread_desc = fedlora::model::ConfigureThreads({threads, torch_threads});
  torch::manual_seed(0);
  double peak = MatmulPeak(1024);

  // The 30M config, or the keyboard-sized one (the peer's default and bench_sim's config a:
  // hidden 256, 4 layers, 4 heads, ff 688, vocab 2048; 4.2M parameters).
  const bool keyboard = config_name == "keyboard";
  // A keyboard step takes a fifth of a 30M one; at 5 steps per run two rows running the very
  // same code measured 8% apart, at 20 within 1%.
  if (iters <= 0) iters = keyboard ? 20 : 5;
  if (!keyboard && config_name != "30m") {
    std::fprintf(stderr, "unknown --config %s (use 30m or keyboard)\n", config_name.c_str());
    return 2;
  }
  fedlora::model::LlamaConfig c;
  c.vocab_size = keyboard ? 2048 : 8000;
  c.hidden_size = keyboard ? 256 : 512;
  c.num_hidden_layers = keyboard ? 4 : 8;
  c.num_attention_heads = keyboard ? 4 : 8;
  c.num_key_value_heads = c.num_attention_heads;
  c.head_dim = 64;
  c.intermediate_size = keyboard ? 688 : 1376;
  c.max_position_embeddings = seq;
  c.tie_word_embeddings = true;
  auto model = fedlora::model::LlamaModel::RandomInit(c, 1);
  torch::Tensor ids = torch::randint(0, c.vocab_size, {batch, seq}, torch::kInt64);
  const double fpt = ForwardFlopsPerToken(c, seq);

  nlohmann::json out = {{"threads", thread_desc},
                        {"frozen_products", fedlora::model::FloatGemmDescription()},
                        {"matmul_peak_gflops", peak},
                        {"config", config_name},
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
  // One LoRA target set, several variants (kernels, shards) timed in turn: each rep runs every
  // variant once, and each keeps its best of 3 reps, so the machine's drift hits all alike.
  struct Variant {
    std::string key;
    bool fused;
    int shards;  // TrainOptions::shards (0 = one per core)
    fedlora::model::FloatGemm gemm = fedlora::model::FloatGemm::kAuto;
  };
  const fedlora::model::FloatGemm default_gemm = fedlora::model::GetFloatGemm();
  auto bench_lora = [&](const std::vector<fedlora::model::Proj>& targets,
                        const std::vector<Variant>& variants) {
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
    auto options = [&](const Variant& v, int64_t steps) {
      fedlora::device::TrainOptions to;
      to.batch_size = 4;
      to.shards = v.shards;
      to.max_steps = steps;
      return to;
    };
    auto run = [&](const Variant& v, int64_t steps) {
      fedlora::model::SetFusedKernels(v.fused);
      fedlora::model::SetFloatGemm(v.gemm);
      auto st = fedlora::device::Train(model, adapter->Parameters(), w, options(v, steps));
      fedlora::model::SetFusedKernels(true);
      fedlora::model::SetFloatGemm(default_gemm);
      if (!st.ok()) {
        std::fprintf(stderr, "%s\n", st.status().ToString().c_str());
        std::exit(1);
      }
      return st->seconds;
    };
    for (const auto& v : variants) run(v, 1);  // warm-up steps
    const double held_before = tracker->CurrentBytes() / 1048576.0;
    std::vector<double> seconds(variants.size(), 1e30), peak_mb(variants.size(), 0);
    for (int rep = 0; rep < 3; ++rep) {
      // The peak is sampled between the reps too, so that a slow spell of the machine at the
      // start cannot understate it (the highest sample counts: fractions only go down).
      peak = std::max(peak, MatmulPeak(1024));
      // Each rep starts one variant later, and each run starts after a pause: the variant
      // after a threaded one-pass run used to lose 15% to OpenBLAS's worker threads, which
      // keep spinning for a while after their last product (measured: two variants running
      // the very same code 10,035 and 8,577 tokens/s apart, in that order).
      for (size_t j = 0; j < variants.size(); ++j) {
        const size_t i = (j + rep) % variants.size();
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        tracker->ResetPeak();
        seconds[i] = std::min(seconds[i], run(variants[i], iters));
        peak_mb[i] = std::max(peak_mb[i], tracker->PeakBytes() / 1048576.0);
      }
    }
    for (size_t i = 0; i < variants.size(); ++i) {
      const Variant& v = variants[i];
      double tps = 4.0 * 128 * iters / seconds[i];  // predicted tokens per second
      // Backward through frozen weights costs one more forward-sized product (input grads).
      double flops = 2.0 * ForwardFlopsPerToken(c, 128);
      nlohmann::json r{{"tokens_per_s", tps},
                       {"gflops", tps * flops / 1e9},
                       {"fraction_of_peak", tps * flops / 1e9 / peak},
                       {"trainable_params", adapter->NumParameters()},
                       {"kernels", v.fused ? "fused" : "reference"},
                       {"shards", v.shards},
                       {"float_gemm", v.gemm == fedlora::model::FloatGemm::kOpenBlas ? "openblas"
                                                                                   : "auto"},
                       {"tensor_peak_mb", peak_mb[i]},
                       {"step_tensor_peak_mb", peak_mb[i] - held_before}};
      // libtorch's profiler sees the calling thread only: one-pass variants.
      if (profile && v.shards == 1) {
        fedlora::model::SetFusedKernels(v.fused);
        r["profile"] = fedlora::bench::ProfileJson(fedlora::bench::ProfileOps([&] {
          (void)fedlora::device::Train(model, adapter->Parameters(), w, options(v, iters));
        }), 25);
        fedlora::model::SetFusedKernels(true);
      }
      out[v.key] = r;
    }
    adapter->Detach(model);
  };
  using P = fedlora::model::Proj;
  const std::vector<P> qv = {P::kQ, P::kV};
  const std::vector<P> all7 = {P::kQ, P::kK, P::kV, P::kO, P::kGate, P::kUp, P::kDown};
  // libtorch's reference ops, the fused kernels in one pass with threaded matrix products
  // (shards 1), and the trainer as a device runs it (`--shards`, 0 = one per core).
  // The last row is the default's twin with every frozen product on OpenBLAS, for the gain
  // of oneDNN's kernels in the same run (the same where oneDNN has none here).
  bench_lora(qv, {{"lora_train_qv_r8_reference", false, 1},
                  {"lora_train_qv_r8_one_pass", true, 1},
                  {"lora_train_qv_r8", true, shards, default_variant_gemm},
                  {"lora_train_qv_r8_openblas", true, shards, fedlora::model::FloatGemm::kOpenBlas}});
  bench_lora(all7, {{"lora_train_all7_r8_reference", false, 1},
                    {"lora_train_all7_r8", true, shards, default_variant_gemm}});
  out["shards_speedup_qv_r8"] = out["lora_train_qv_r8"]["tokens_per_s"].get<double>() /
                                out["lora_train_qv_r8_one_pass"]["tokens_per_s"].get<double>();
  out["fused_speedup_qv_r8"] = out["lora_train_qv_r8_one_pass"]["tokens_per_s"].get<double>() /
                               out["lora_train_qv_r8_reference"]["tokens_per_s"].get<double>();
  out["kernels"] = KernelLines(c, 4 * 128);
  out["peak_rss_mb"] = PeakRssMb();
  // The peak again after the runs; the higher of the two counts (drift only lowers a run).
  peak = std::max(peak, MatmulPeak(1024));
  out["matmul_peak_gflops"] = peak;
  for (const char* k : {"forward", "lora_train_qv_r8_reference", "lora_train_qv_r8_one_pass",
                        "lora_train_qv_r8", "lora_train_qv_r8_openblas",
                        "lora_train_all7_r8_reference", "lora_train_all7_r8"}) {
    out[k]["fraction_of_peak"] =
        out[k]["gflops"].get<double>() / out["matmul_peak_gflops"].get<double>();
  }
  // The GEMM ceiling: the step's products alone (bench/gemm_ceiling.h), in one pass and split
  // as the trainer splits it; the fractions use the same FLOPs and peak as the rows above.
  {
    const double step_flops = 4.0 * 128 * 2.0 * ForwardFlopsPerToken(c, 128);
    const int sharded = shards > 0 ? shards : fedlora::model::NumCores();
    for (const auto& [key, n] : std::vector<std::pair<std::string, int>>{{"one_pass", 1},
                                                                        {"sharded", sharded}}) {
      const double sec = fedlora::bench::StepGemmSeconds(c, 4, 128, n);
      out["gemm_ceiling"][key] = {{"shards", n},
                                  {"step_gemm_ms", sec * 1e3},
                                  {"fraction_of_peak", step_flops / sec / 1e9 / peak}};
    }
  }
  if (peer) {
    // The peer inherits OPENBLAS_CORETYPE from SelectBlasCore (the same GEMM kernels as ours);
    // "as installed" is what its user gets from Debian's OpenBLAS on this CPU without it.
    const std::string args = absl::StrCat(
        "--hidden ", c.hidden_size, " --layers ", c.num_hidden_layers, " --heads ",
        c.num_attention_heads, " --ff ", c.intermediate_size, " --vocab ", c.vocab_size,
        keyboard ? " --cohort 20 --rounds 1" : " --cohort 5 --rounds 1");
    for (const auto& [key, env] :
         std::vector<std::pair<std::string, std::string>>{{"peer_pytorch_qv_r8", ""},
                                                          {"peer_pytorch_qv_r8_as_installed",
                                                           "env -u OPENBLAS_CORETYPE"}}) {
      nlohmann::json pj = fedlora::bench::RunPytorchPeer(args, env);
      if (pj.contains("tokens_per_s")) {
        double tps = pj["tokens_per_s"].get<double>();
        double g = tps * 2.0 * ForwardFlopsPerToken(c, 128) / 1e9;
        pj["gflops"] = g;
        pj["fraction_of_peak"] = g / peak;
        pj["speedup_of_ours"] = out["lora_train_qv_r8"]["tokens_per_s"].get<double>() / tps;
      }
      out[key] = pj;
    }
    if (out["peer_pytorch_qv_r8"].contains("speedup_of_ours")) {
      out["lora_qv_speedup_vs_peer"] = out["peer_pytorch_qv_r8"]["speedup_of_ours"];
    }
  }
  if (json) {
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("threads            %s\nfrozen products    %s\nmatmul peak        %.1f GFLOP/s\nparameters         %lld\n",
                thread_desc.c_str(), fedlora::model::FloatGemmDescription().c_str(), out["matmul_peak_gflops"].get<double>(), static_cast<long long>(c.NumParameters()));
    for (const char* k : {"forward", "lora_train_qv_r8_reference", "lora_train_qv_r8_one_pass",
                          "lora_train_qv_r8", "lora_train_qv_r8_openblas",
                          "lora_train_all7_r8_reference", "lora_train_all7_r8",
                          "peer_pytorch_qv_r8", "peer_pytorch_qv_r8_as_installed"}) {
      if (!out.contains(k) || !out[k].contains("gflops")) continue;
      std::printf("%-32s %8.0f tokens/s  %6.1f GFLOP/s  %4.0f%% of peak", k,
                  out[k]["tokens_per_s"].get<double>(), out[k]["gflops"].get<double>(),
                  100 * out[k]["fraction_of_peak"].get<double>());
      if (out[k].contains("step_tensor_peak_mb")) {
        std::printf("  step +%.0f MB of tensors", out[k]["step_tensor_peak_mb"].get<double>());
      }
      std::printf("\n");
    }
    for (const auto& [key, g] : out["gemm_ceiling"].items()) {
      std::printf("GEMMs of a step alone, %-9s %7.1f ms      %4.0f%% of peak (the ceiling)\n",
                  key.c_str(), g["step_gemm_ms"].get<double>(),
                  100 * g["fraction_of_peak"].get<double>());
    }
    std::printf("peak RSS           %.0f MB\n", out["peak_rss_mb"].get<double>());
    for (const auto& [name, kl] : out["kernels"].items()) {
      std::printf("kernel %-22s reference %7.2f ms  fused %7.2f ms  %.2fx\n", name.c_str(),
                  kl["reference_ms"].get<double>(), kl["fused_ms"].get<double>(),
                  kl["speedup"].get<double>());
    }
    for (const char* k : {"lora_train_qv_r8_reference", "lora_train_qv_r8_one_pass",
                          "lora_train_qv_r8", "lora_train_all7_r8_reference",
                          "lora_train_all7_r8"}) {
      if (!out[k].contains("profile")) continue;
      const auto& p = out[k]["profile"];
      std::printf("\n%s, self time per op (GEMM %.0f%% of %.0f ms):\n", k,
                  100 * p["gemm_share"].get<double>(), p["wall_ms"].get<double>());
      for (const auto& o : p["ops"]) {
        std::printf("  %-40s %8.1f ms %5.1f%% %6lld calls\n", o["op"].get<std::string>().c_str(),
                    o["self_ms"].get<double>(), 100 * o["share"].get<double>(),
                    static_cast<long long>(o["calls"].get<int64_t>()));
      }
    }
  }
  return 0;
}
