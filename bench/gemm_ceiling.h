// The GEMM ceiling of a LoRA training step: the step's matrix products alone, at its shapes,
// back to back on random data, with nothing else in between. The time it takes is what a step
// would take if every element-wise kernel, copy and dispatch cost nothing, so the FLOPs the
// bench credits a step with, divided by it, bound the fraction of the matmul peak any
// arrangement of the rest can reach.
#ifndef FEDLORA_BENCH_GEMM_CEILING_H_
#define FEDLORA_BENCH_GEMM_CEILING_H_

#include <torch/types.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

#include "fedlora/model/float_gemm.h"
#include "fedlora/model/llama.h"
#include "fedlora/model/threads.h"

namespace fedlora::bench {

// Seconds for the GEMMs of one step over `windows` windows of `seq` tokens (frozen base): per
// layer each projection's forward (x W^T) and input gradient (dy W); attention's score and
// value products per head (2 forward, 4 backward); the LM head's forward and input gradient.
// LoRA's rank-r products are left out (they only lower the ceiling). With `shards` > 1 the
// windows are split across that many threads with single-threaded OpenBLAS, as the trainer
// splits a step. Best of `reps` after a warm-up.
inline double StepGemmSeconds(const model::LlamaConfig& c, int64_t windows, int64_t seq,
                              int shards, int reps = 3) {
  shards = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(shards, windows)));
  const int64_t d = c.hidden_size, hd = c.head_dim, h = c.num_attention_heads;
  const int64_t kv = c.num_key_value_heads, ff = c.intermediate_size;
  struct Proj {
    int64_t in, out;
  };
  const std::vector<Proj> projs = {{d, h * hd}, {d, kv * hd}, {d, kv * hd}, {h * hd, d},
                                   {d, ff},     {d, ff},      {ff, d}};
  auto run_part = [&](int64_t part_windows, bool timed_once) {
    const int64_t t = part_windows * seq;
    std::vector<torch::Tensor> w, x, dy;
    for (const auto& p : projs) {
      w.push_back(torch::randn({p.out, p.in}));
      x.push_back(torch::randn({t, p.in}));
      dy.push_back(torch::randn({t, p.out}));
    }
    torch::Tensor q = torch::randn({part_windows * h, seq, hd});
    torch::Tensor k = torch::randn({part_windows * h, seq, hd});
    torch::Tensor s = torch::randn({part_windows * h, seq, seq});
    torch::Tensor head = torch::randn({c.vocab_size, d}), hx = torch::randn({t, d});
    torch::Tensor hdy = torch::randn({t, c.vocab_size});
    auto once = [&] {
      for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
        // The frozen weights' products go where the trainer sends them (float_gemm.h).
        for (size_t i = 0; i < projs.size(); ++i) {
          model::FrozenGemm(x[i], w[i], /*w_transposed=*/true);
          model::FrozenGemm(dy[i], w[i], /*w_transposed=*/false);
        }
        torch::bmm(q, k.transpose(1, 2));  // scores
        torch::bmm(s, k);                  // probabilities x values
        torch::bmm(s, k);                  // d scores -> dq
        torch::bmm(s.transpose(1, 2), q);  // d scores -> dk
        torch::bmm(s.transpose(1, 2), q);  // probabilities^T x d out -> dv
        torch::bmm(q, k.transpose(1, 2));  // d out x values^T -> d probabilities
      }
      model::FrozenGemm(hx, head, /*w_transposed=*/true);
      model::FrozenGemm(hdy, head, /*w_transposed=*/false);
    };
    once();  // warm-up (allocations, OpenBLAS buffers)
    double best = 1e30;
    for (int r = 0; r < (timed_once ? 1 : reps); ++r) {
      auto t0 = std::chrono::steady_clock::now();
      once();
      best = std::min(best,
                      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return best;
  };
  if (shards == 1) return run_part(windows, false);
  // Every part in its own thread, timed together: the step takes as long as its slowest part.
  model::ScopedBlasThreads single(1);
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    std::vector<double> secs(shards, 0);
    std::vector<std::thread> threads;
    for (int s = 0; s < shards; ++s) {
      const int64_t part = windows * (s + 1) / shards - windows * s / shards;
      threads.emplace_back([&, s, part] { secs[s] = run_part(part, true); });
    }
    for (auto& th : threads) th.join();
    best = std::min(best, *std::max_element(secs.begin(), secs.end()));
  }
  return best;
}

}  // namespace fedlora::bench

#endif  // FEDLORA_BENCH_GEMM_CEILING_H_
