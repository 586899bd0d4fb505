// What fedlora's two users of oneDNN share: the frozen float32 products (float_gemm.h) and the
// int8 products of a compressed base (fedlora_compress). Every product runs on its calling
// thread alone (a training shard, a simulated device's worker): training gets its
// parallelism from shards, and a product spread over OpenMP threads as well spins against
// OpenBLAS's threads between products (compress/src/int8_matmul.cc has the measurement).
#ifndef FEDLORA_MODEL_ONEDNN_H_
#define FEDLORA_MODEL_ONEDNN_H_

#include <omp.h>

#include <dnnl.hpp>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>

namespace fedlora::model::onednn {

// The CPU engine (one per process).
dnnl::engine& Engine();

// This thread's OpenMP setting at one thread for the object's lifetime, restored after
// (libtorch reads it too). Hold one while a primitive is made as well: oneDNN sizes its
// blocking for the thread count it sees then.
class OneThread {
 public:
  OneThread() : previous_(omp_get_max_threads()) { omp_set_num_threads(1); }
  ~OneThread() { omp_set_num_threads(previous_); }
  OneThread(const OneThread&) = delete;
  OneThread& operator=(const OneThread&) = delete;

 private:
  int previous_;
};

// Runs `prim` (made with dnnl::scratchpad_mode::user) on the calling thread with `args` and a
// scratchpad of `scratchpad` (its primitive descriptor's scratchpad_desc()), and waits for it.
// The stream and the scratchpad come from a process-wide pool, not from the thread: the
// trainer starts new shard threads every step, and a thread-local buffer was allocated and
// paged in again at each one. Throws dnnl::error.
void Execute(const dnnl::primitive& prim, const dnnl::memory::desc& scratchpad,
             std::unordered_map<int, dnnl::memory> args);

// Primitives by shape, made once (under OneThread). Values may be null (the maker's "no
// primitive for this shape"). Bounded: a long-running process with ever new shapes starts
// over at `capacity` entries instead of growing.
template <typename Key, typename Value>
class PrimitiveCache {
 public:
  explicit PrimitiveCache(size_t capacity = 512) : capacity_(capacity) {}

  std::shared_ptr<const Value> Get(const Key& key,
                                   const std::function<std::shared_ptr<const Value>()>& make) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(key);
    if (it != entries_.end()) return it->second;
    if (entries_.size() >= capacity_) entries_.clear();
    OneThread one;
    std::shared_ptr<const Value> v = make();
    entries_.emplace(key, v);
    return v;
  }

 private:
  const size_t capacity_;
  std::mutex mu_;
  std::map<Key, std::shared_ptr<const Value>> entries_;
};

}  // namespace fedlora::model::onednn

#endif  // FEDLORA_MODEL_ONEDNN_H_
