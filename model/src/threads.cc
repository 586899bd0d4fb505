#include "fedlora/model/threads.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <malloc.h>
#include <torch/types.h>
#include <unistd.h>

#include <cstdlib>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace fedlora::model {
namespace {
using SetThreadsFn = void (*)(int);
using GetThreadsFn = int (*)();
using CoreNameFn = char* (*)();
using VoidFn = void (*)();

// Vector width class of an OpenBLAS core name: 0 SSE, 1 AVX, 2 AVX2 + FMA, 3 AVX-512.
int CoreLevel(std::string core) {
  core = absl::AsciiStrToLower(core);
  for (const char* n : {"skylakex", "cooperlake", "sapphirerapids"}) {
    if (core == n) return 3;
  }
  for (const char* n : {"haswell", "zen", "skylake"}) {
    if (core == n) return 2;
  }
  if (core == "sandybridge" || core == "bulldozer" || core == "piledriver" ||
      core == "steamroller" || core == "excavator") {
    return 1;
  }
  return 0;
}

// The widest OpenBLAS core this CPU can run (cpuid, via the compiler's feature probe).
const char* BestCoreForCpu(int* level) {
#if !defined(__x86_64__)
  *level = 0;  // ARM and others: OpenBLAS's own choice stands
  return nullptr;
#else
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
    *level = 3;
    return "SkylakeX";
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    *level = 2;
    return "Haswell";
  }
  *level = 0;
  return nullptr;
#endif
}

std::string SelectBlasCoreOnce() {
  auto name = reinterpret_cast<CoreNameFn>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  if (name == nullptr) return "";
  std::string core = name();
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return core;  // the user's choice stands
  int want_level = 0;
  const char* want = BestCoreForCpu(&want_level);
  if (want == nullptr || CoreLevel(core) >= want_level) return core;
  auto quit = reinterpret_cast<VoidFn>(dlsym(RTLD_DEFAULT, "gotoblas_dynamic_quit"));
  auto init = reinterpret_cast<VoidFn>(dlsym(RTLD_DEFAULT, "gotoblas_dynamic_init"));
  if (quit == nullptr || init == nullptr) return core;  // not a DYNAMIC_ARCH build
  // Child processes (the PyTorch peer, a coordinator started by a test) get the same kernels.
  setenv("OPENBLAS_CORETYPE", want, 0);
  quit();
  init();
  return name();
}

}  // namespace

std::string SelectBlasCore() {
  static std::once_flag once;
  static std::string core;
  std::call_once(once, [] { core = SelectBlasCoreOnce(); });
  return core;
}

std::string BlasName() {
  return dlsym(RTLD_DEFAULT, "openblas_set_num_threads") != nullptr ? "openblas"
                                                                    : "reference/unknown";
}

std::string ConfigureThreads(const ThreadSettings& settings) {
  // Training allocates and frees the same large activations every step. glibc would return
  // them to the kernel (mmap/munmap, trimming) and fault fresh zeroed pages in each time;
  // keeping them in the heap measured ~8% faster in bench_sim.
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_TOP_PAD, 64 << 20);
  const std::string core = SelectBlasCore();
  int cores = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  int blas = settings.blas_threads > 0 ? settings.blas_threads : cores;
  int torch_threads = settings.torch_threads > 0 ? settings.torch_threads : 1;
  at::set_num_threads(torch_threads);
  auto set = reinterpret_cast<SetThreadsFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  auto get = reinterpret_cast<GetThreadsFn>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  if (set != nullptr) set(blas);
  int actual = get != nullptr ? get() : blas;
  return absl::StrCat("blas=", BlasName(), "(", actual, core.empty() ? "" : ", " + core,
                      ") torch=", at::get_num_threads());
}

int NumCores() { return static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)); }

int BlasThreads() {
  auto get = reinterpret_cast<GetThreadsFn>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  const int n = get != nullptr ? get() : 0;
  return n > 0 ? n : NumCores();
}

ScopedBlasThreads::ScopedBlasThreads(int threads) {
  auto set = reinterpret_cast<SetThreadsFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  auto get = reinterpret_cast<GetThreadsFn>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  if (set == nullptr || get == nullptr) return;
  previous_ = get();
  set(threads);
}

ScopedBlasThreads::~ScopedBlasThreads() {
  if (previous_ <= 0) return;
  auto set = reinterpret_cast<SetThreadsFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  if (set != nullptr) set(previous_);
}

}  // namespace fedlora::model
