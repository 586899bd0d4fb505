// Float32 products with a frozen weight on oneDNN's brgemm kernels or on OpenBLAS (see
// fedlora/model/float_gemm.h for when each runs and why).
#include "fedlora/model/float_gemm.h"

#include <omp.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/torch.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <dnnl.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

#include "fedlora/model/threads.h"

namespace fedlora::model {
namespace {

std::atomic<int> g_mode{-1};  // -1: not read from the environment yet

FloatGemm Mode() {
  int m = g_mode.load(std::memory_order_relaxed);
  if (m < 0) {
    const char* env = std::getenv("FEDLORA_FLOAT_GEMM");
    FloatGemm g = FloatGemm::kAuto;
    if (env != nullptr && std::strcmp(env, "openblas") == 0) g = FloatGemm::kOpenBlas;
    m = static_cast<int>(g);
    int expected = -1;
    g_mode.compare_exchange_strong(expected, m);
    m = g_mode.load();
  }
  return static_cast<FloatGemm>(m);
}

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// oneDNN sizes its blocking for the calling thread's OpenMP setting, so it is set to one
// thread while a primitive is made and while it runs; the previous value (which libtorch
// reads too) comes back after.
struct OneOmpThread {
  int previous = omp_get_max_threads();
  OneOmpThread() { omp_set_num_threads(1); }
  ~OneOmpThread() { omp_set_num_threads(previous); }
};

// A shape's primitive, or none when oneDNN has no brgemm kernel for it (OpenBLAS runs it).
struct Prim {
  dnnl::matmul::primitive_desc pd;
  dnnl::matmul matmul;
};
using Key = std::tuple<int64_t, int64_t, int64_t, bool>;

std::shared_ptr<const Prim> MakePrim(int64_t m, int64_t k, int64_t n, bool w_transposed) {
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  OneOmpThread one;
  try {
    dnnl::memory::desc a({m, k}, dt::f32, tag::ab);
    dnnl::memory::desc b({k, n}, dt::f32, w_transposed ? tag::ba : tag::ab);
    dnnl::memory::desc c({m, n}, dt::f32, tag::ab);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);  // a buffer per thread, in Run
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), attr, Engine());
    // Only the brgemm kernels beat OpenBLAS (measured); "gemm:jit" and the reference
    // kernels were slower at some of a step's shapes.
    if (std::strncmp(pd.impl_info_str(), "brg", 3) != 0) return nullptr;
    auto p = std::make_shared<Prim>();
    p->pd = pd;
    p->matmul = dnnl::matmul(pd);
    return p;
  } catch (const dnnl::error&) {
    return nullptr;  // no oneDNN kernel for this shape here: OpenBLAS runs it
  }
}

std::shared_ptr<const Prim> GetPrim(int64_t m, int64_t k, int64_t n, bool w_transposed) {
  static std::mutex mu;
  static std::map<Key, std::shared_ptr<const Prim>> cache;
  const Key key{m, k, n, w_transposed};
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  // Window lengths vary little, but a long-running process must not grow without bound.
  if (cache.size() >= 512) cache.clear();
  std::shared_ptr<const Prim> p = MakePrim(m, k, n, w_transposed);
  cache.emplace(key, p);
  return p;
}

bool ThreadRunsAlone() { return BlasThreads() == 1 || NumCores() == 1; }


// A stream and a scratchpad for one product at a time. The trainer starts new shard threads
// every step, so these outlive threads: a thread-local buffer was allocated and paged in
// again at every step (measured: the keyboard config's step ran 6% slower on oneDNN than on
// OpenBLAS that way, though every product alone ran faster).
struct Workspace {
  std::unique_ptr<dnnl::stream> stream;
  std::unique_ptr<uint8_t[]> scratch;
  size_t size = 0;
};

class WorkspacePool {
 public:
  std::unique_ptr<Workspace> Take() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!free_.empty()) {
        std::unique_ptr<Workspace> w = std::move(free_.back());
        free_.pop_back();
        return w;
      }
    }
    auto w = std::make_unique<Workspace>();
    w->stream = std::make_unique<dnnl::stream>(Engine());
    return w;
  }
  void Give(std::unique_ptr<Workspace> w) {
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(std::move(w));
  }

 private:
  std::mutex mu_;
  std::vector<std::unique_ptr<Workspace>> free_;  // at most as many as products ever at once
};

WorkspacePool& Pool() {
  static WorkspacePool* pool = new WorkspacePool;  // never destroyed: used until exit
  return *pool;
}

void RunOneDnn(const Prim& p, const float* a, const float* w, float* c) {
  OneOmpThread one;
  std::unique_ptr<Workspace> ws;
  try {
    ws = Pool().Take();
    const dnnl::memory::desc sd = p.pd.scratchpad_desc();
    if (ws->size < sd.get_size()) {
      ws->scratch.reset(new uint8_t[sd.get_size()]);  // uninitialized: oneDNN writes it first
      ws->size = sd.get_size();
    }
    dnnl::memory am(p.pd.src_desc(), Engine(), const_cast<float*>(a));
    dnnl::memory bm(p.pd.weights_desc(), Engine(), const_cast<float*>(w));
    dnnl::memory cm(p.pd.dst_desc(), Engine(), c);
    dnnl::memory sm(sd, Engine(), ws->scratch.get());
    p.matmul.execute(*ws->stream, {{DNNL_ARG_SRC, am},
                                   {DNNL_ARG_WEIGHTS, bm},
                                   {DNNL_ARG_DST, cm},
                                   {DNNL_ARG_SCRATCHPAD, sm}});
    ws->stream->wait();
  } catch (const dnnl::error& e) {
    TORCH_CHECK(false, "oneDNN float32 matmul failed: ", e.what(),
                " (hint: FEDLORA_FLOAT_GEMM=openblas runs these products on OpenBLAS)");
  }
  Pool().Give(std::move(ws));
}

void CheckOperands(const torch::Tensor& a, const torch::Tensor& w, bool w_transposed) {
  TORCH_CHECK(a.scalar_type() == torch::kFloat && w.scalar_type() == torch::kFloat,
              "FrozenGemm: float32 operands expected, got ", a.scalar_type(), " and ",
              w.scalar_type());
  TORCH_CHECK(w.dim() == 2, "FrozenGemm: the weight must be 2-D, got ", w.sizes());
  const int64_t k = w_transposed ? w.size(1) : w.size(0);
  TORCH_CHECK(a.dim() >= 1 && a.size(-1) == k, "FrozenGemm: the input's last dimension is ",
              a.dim() >= 1 ? a.size(-1) : 0, ", the weight ", w.sizes(), " needs ", k);
}

// Backward of y = x W^T with respect to x: dx = dy W. Holds W (not a copy).
struct FrozenDenseBackward : public torch::autograd::Node {
  explicit FrozenDenseBackward(torch::Tensor w) : weight(std::move(w)) {}
  torch::autograd::variable_list apply(torch::autograd::variable_list&& grads) override {
    torch::autograd::variable_list out(1);
    if (!grads[0].defined() || !should_compute_output(0)) return out;
    out[0] = FrozenGemm(grads[0], weight, /*w_transposed=*/false);
    return out;
  }
  std::string name() const override { return "FrozenDenseBackward"; }
  void release_variables() override { weight.reset(); }
  torch::Tensor weight;
};

}  // namespace

void SetFloatGemm(FloatGemm g) { g_mode.store(static_cast<int>(g)); }
FloatGemm GetFloatGemm() { return Mode(); }

namespace {

// The primitive a product of these sizes runs on from the calling thread now; null: OpenBLAS.
std::shared_ptr<const Prim> OneDnnPrimFor(int64_t m, int64_t k, int64_t n, bool w_transposed) {
  if (Mode() == FloatGemm::kOpenBlas || m <= 0 || k <= 0 || n <= 0 || !ThreadRunsAlone()) {
    return nullptr;
  }
  return GetPrim(m, k, n, w_transposed);
}

}  // namespace

bool FloatGemmUsesOneDnn(int64_t m, int64_t k, int64_t n, bool w_transposed) {
  return OneDnnPrimFor(m, k, n, w_transposed) != nullptr;
}

std::string FloatGemmDescription() {
  if (Mode() == FloatGemm::kOpenBlas) return "openblas (FEDLORA_FLOAT_GEMM=openblas)";
  // A representative shard shape: whether oneDNN has brgemm kernels here at all.
  if (GetPrim(256, 512, 512, true) == nullptr) return "openblas (no oneDNN brgemm kernels here)";
  return "onednn brgemm on single-threaded shards, openblas otherwise";
}

void FrozenGemmOut(const torch::Tensor& a, const torch::Tensor& w, bool w_transposed,
                   torch::Tensor& out) {
  CheckOperands(a, w, w_transposed);
  TORCH_CHECK(a.dim() == 2, "FrozenGemmOut: the input must be 2-D, got ", a.sizes());
  const int64_t m = a.size(0), k = a.size(1), n = w_transposed ? w.size(0) : w.size(1);
  TORCH_CHECK(out.scalar_type() == torch::kFloat && out.is_contiguous() && out.dim() == 2 &&
                  out.size(0) == m && out.size(1) == n,
              "FrozenGemmOut: the output must be contiguous float32 [", m, ", ", n, "], got ",
              out.sizes());
  if (m == 0 || n == 0) return;
  const std::shared_ptr<const Prim> p = OneDnnPrimFor(m, k, n, w_transposed);
  if (p == nullptr) {
    at::mm_out(out, a, w_transposed ? w.t() : w);
    return;
  }
  const torch::Tensor ac = a.contiguous(), wc = w.contiguous();
  RunOneDnn(*p, ac.data_ptr<float>(), wc.data_ptr<float>(), out.data_ptr<float>());
}

torch::Tensor FrozenGemm(const torch::Tensor& a, const torch::Tensor& w, bool w_transposed) {
  CheckOperands(a, w, w_transposed);
  const int64_t k = a.size(-1), n = w_transposed ? w.size(0) : w.size(1);
  std::vector<int64_t> shape(a.sizes().begin(), a.sizes().end());
  shape.back() = n;
  int64_t rows = 1;
  for (int64_t i = 0; i + 1 < a.dim(); ++i) rows *= a.size(i);
  torch::Tensor out = torch::empty({rows, n}, a.options());
  FrozenGemmOut(a.reshape({rows, k}), w, w_transposed, out);
  return out.view(shape);
}

torch::Tensor FrozenDenseLinear(const torch::Tensor& x, const torch::Tensor& w) {
  torch::Tensor y;
  {
    torch::autograd::AutoGradMode no_grad(false);
    y = FrozenGemm(x.detach(), w.detach(), /*w_transposed=*/true);
  }
  if (torch::autograd::GradMode::is_enabled() && x.requires_grad()) {
    auto node = std::shared_ptr<FrozenDenseBackward>(new FrozenDenseBackward(w.detach()),
                                                     torch::autograd::deleteNode);
    node->set_next_edges(torch::autograd::collect_next_edges(x));
    torch::autograd::set_history(y, node);
  }
  return y;
}

}  // namespace fedlora::model
