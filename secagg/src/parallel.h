// A minimal parallel-for over indices (internal).
#ifndef FEDLORA_SECAGG_SRC_PARALLEL_H_
#define FEDLORA_SECAGG_SRC_PARALLEL_H_

#include <atomic>
#include <thread>
#include <vector>

namespace fedlora::secagg {

// Runs fn(i, worker) for i in [0, n) on `threads` threads (dynamic scheduling);
// worker in [0, threads) identifies the calling thread for per-thread scratch.
template <typename Fn>
void ParallelFor(size_t n, int threads, Fn fn) {
  if (threads < 1) threads = 1;
  std::atomic<size_t> next{0};
  auto worker = [&](int w) {
    for (size_t i = next++; i < n; i = next++) fn(i, w);
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker, t);
  worker(0);
  for (auto& th : pool) th.join();
}

}  // namespace fedlora::secagg

#endif  // FEDLORA_SECAGG_SRC_PARALLEL_H_
