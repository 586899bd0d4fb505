#include "fedlora/model/threads.h"

#include <dlfcn.h>
#include <malloc.h>
#include <torch/torch.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"

namespace fedlora::model {
namespace {
using SetThreadsFn = void (*)(int);
using GetThreadsFn = int (*)();
}  // namespace

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
  int cores = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  int blas = settings.blas_threads > 0 ? settings.blas_threads : cores;
  int torch_threads = settings.torch_threads > 0 ? settings.torch_threads : 1;
  at::set_num_threads(torch_threads);
  auto set = reinterpret_cast<SetThreadsFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  auto get = reinterpret_cast<GetThreadsFn>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  if (set != nullptr) set(blas);
  int actual = get != nullptr ? get() : blas;
  return absl::StrCat("blas=", BlasName(), "(", actual, ") torch=", at::get_num_threads());
}

int NumCores() { return static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)); }

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
