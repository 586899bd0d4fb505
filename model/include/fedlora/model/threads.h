// Compute thread settings. OpenBLAS threads its own matrix products; libtorch's intra-op pool
// (OpenMP) runs the element-wise kernels. Both at once oversubscribe small machines, so the
// default gives OpenBLAS every core and libtorch one thread (measured: bench/model_bench).
#ifndef FEDLORA_MODEL_THREADS_H_
#define FEDLORA_MODEL_THREADS_H_

#include <string>

namespace fedlora::model {

struct ThreadSettings {
  int blas_threads = 0;   // 0: all cores
  int torch_threads = 1;  // libtorch intra-op threads
};

// Applies the settings (OpenBLAS via openblas_set_num_threads when the loaded BLAS is
// OpenBLAS) and keeps large freed buffers in the heap (mallopt) instead of unmapping them. Returns
// a description such as "blas=openblas(2, SkylakeX) torch=1".
std::string ConfigureThreads(const ThreadSettings& settings);

// Sets OpenBLAS to `threads` for the lifetime of the object and restores the previous count.
// Used while several worker threads each run their own single-threaded matrix products.
class ScopedBlasThreads {
 public:
  explicit ScopedBlasThreads(int threads);
  ~ScopedBlasThreads();
  ScopedBlasThreads(const ScopedBlasThreads&) = delete;
  ScopedBlasThreads& operator=(const ScopedBlasThreads&) = delete;

 private:
  int previous_ = 0;
};

// OpenBLAS 0.3.21 (Debian 12) picks its kernels from the CPU's model number and falls back to
// its SSE3 "Prescott" kernels on a CPU newer than it knows (measured: model 0xCF, an
// AVX-512 Xeon, ran float32 GEMM 4.4x slower). When the loaded OpenBLAS chose a narrower core
// than cpuid reports, this switches it to the widest core the CPU runs (SkylakeX for AVX-512,
// Haswell for AVX2 + FMA) and exports OPENBLAS_CORETYPE for child processes. An
// OPENBLAS_CORETYPE already set is left alone. Runs once, before the first matrix product
// (ConfigureThreads calls it). Returns the core in use ("" when the BLAS is not OpenBLAS).
std::string SelectBlasCore();

// Number of online cores.
int NumCores();

// Threads OpenBLAS runs its products on now (ConfigureThreads, ScopedBlasThreads); the number
// of cores when the BLAS is not OpenBLAS.
int BlasThreads();

// The BLAS libtorch resolved at run time: "openblas" or "reference/unknown".
std::string BlasName();

}  // namespace fedlora::model

#endif  // FEDLORA_MODEL_THREADS_H_
