// Float32 products with a frozen weight on oneDNN's brgemm kernels or on OpenBLAS (see
// fedlora/model/float_gemm.h for when each runs and why).
#include "fedlora/model/float_gemm.h"

#include <torch/types.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <dnnl.hpp>
#include <memory>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "fedlora/model/onednn.h"
#include "fedlora/model/threads.h"

namespace fedlora::model {
namespace {

std::atomic<int> g_mode{-1};  // -1: not read from the environment yet

FloatGemm Mode() {
  int m = g_mode.load(std::memory_order_relaxed);
  if (m < 0) {
    const char* env = std::getenv("FEDLORA_FLOAT_GEMM");
    absl::StatusOr<FloatGemm> g = ParseFloatGemm(env == nullptr ? "" : env);
    TORCH_CHECK(g.ok(), std::string(g.status().message()));
    int expected = -1;
    g_mode.compare_exchange_strong(expected, static_cast<int>(*g));
    m = g_mode.load();
  }
  return static_cast<FloatGemm>(m);
}

// A shape's primitive, or none when oneDNN has no brgemm kernel for it (OpenBLAS runs it).
struct Prim {
  dnnl::matmul::primitive_desc pd;
  dnnl::matmul matmul;
};
using Key = std::tuple<int64_t, int64_t, int64_t, bool>;

std::shared_ptr<const Prim> MakePrim(int64_t m, int64_t k, int64_t n, bool w_transposed) {
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  try {
    dnnl::memory::desc a({m, k}, dt::f32, tag::ab);
    dnnl::memory::desc b({k, n}, dt::f32, w_transposed ? tag::ba : tag::ab);
    dnnl::memory::desc c({m, n}, dt::f32, tag::ab);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);  // pooled: onednn::Execute
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), attr, onednn::Engine());
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

// Made under one OpenMP thread (onednn::PrimitiveCache), as they run.
std::shared_ptr<const Prim> GetPrim(int64_t m, int64_t k, int64_t n, bool w_transposed) {
  static auto* cache = new onednn::PrimitiveCache<Key, Prim>();
  return cache->Get({m, k, n, w_transposed}, [&] { return MakePrim(m, k, n, w_transposed); });
}

bool ThreadRunsAlone() { return BlasThreads() == 1 || NumCores() == 1; }

void RunOneDnn(const Prim& p, const float* a, const float* w, float* c) {
  try {
    const dnnl::engine& e = onednn::Engine();
    onednn::Execute(p.matmul, p.pd.scratchpad_desc(),
                    {{DNNL_ARG_SRC, dnnl::memory(p.pd.src_desc(), e, const_cast<float*>(a))},
                     {DNNL_ARG_WEIGHTS, dnnl::memory(p.pd.weights_desc(), e, const_cast<float*>(w))},
                     {DNNL_ARG_DST, dnnl::memory(p.pd.dst_desc(), e, c)}});
  } catch (const dnnl::error& e) {
    TORCH_CHECK(false, "oneDNN float32 matmul failed: ", e.what(),
                " (hint: FEDLORA_FLOAT_GEMM=openblas runs these products on OpenBLAS)");
  }
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

}  // namespace

absl::StatusOr<FloatGemm> ParseFloatGemm(std::string_view name) {
  if (name.empty() || name == "auto") return FloatGemm::kAuto;
  if (name == "openblas") return FloatGemm::kOpenBlas;
  return absl::InvalidArgumentError(absl::StrCat(
      "FEDLORA_FLOAT_GEMM='", std::string(name),
      "' is not one of auto, openblas (hint: unset it for the default, auto)"));
}

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

}  // namespace fedlora::model
