// Bytes held by libtorch CPU tensors, current and peak: a c10::Allocator that wraps the default
// CPU allocator and counts every allocation until its deleter runs. Installed by a benchmark
// before it creates tensors; ResetPeak() starts a phase, PeakBytes() - the bytes held at the
// start is what that phase added (activations, gradients, optimizer state).
#ifndef FEDLORA_BENCH_ALLOC_TRACKER_H_
#define FEDLORA_BENCH_ALLOC_TRACKER_H_

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <atomic>

namespace fedlora::bench {

class TrackingCpuAllocator final : public c10::Allocator {
 public:
  // Installs the tracker as libtorch's CPU allocator (once per process) and returns it.
  static TrackingCpuAllocator* Install() {
    static TrackingCpuAllocator* tracker = [] {
      auto* t = new TrackingCpuAllocator(c10::GetCPUAllocator());
      c10::SetCPUAllocator(t, /*priority=*/100);
      return t;
    }();
    return tracker;
  }

  c10::DataPtr allocate(size_t n) const override {
    c10::DataPtr inner = base_->allocate(n);
    void* data = inner.get();
    auto* ctx = new Context{std::move(inner), n, this};
    const int64_t now = current_.fetch_add(static_cast<int64_t>(n)) + static_cast<int64_t>(n);
    int64_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
    return {data, ctx, &Delete, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return nullptr; }

  int64_t CurrentBytes() const { return current_.load(); }
  int64_t PeakBytes() const { return peak_.load(); }
  void ResetPeak() { peak_.store(current_.load()); }

 private:
  struct Context {
    c10::DataPtr inner;
    size_t bytes;
    const TrackingCpuAllocator* owner;
  };
  explicit TrackingCpuAllocator(c10::Allocator* base) : base_(base) {}
  static void Delete(void* p) {
    auto* ctx = static_cast<Context*>(p);
    ctx->owner->current_.fetch_sub(static_cast<int64_t>(ctx->bytes));
    delete ctx;  // frees the memory through the default allocator's deleter
  }

  c10::Allocator* base_;
  mutable std::atomic<int64_t> current_{0};
  mutable std::atomic<int64_t> peak_{0};
};

}  // namespace fedlora::bench

#endif  // FEDLORA_BENCH_ALLOC_TRACKER_H_
