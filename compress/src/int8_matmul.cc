#include "int8_matmul.h"

#include <torch/types.h>
#include <torch/utils.h>

#include <cmath>
#include <dnnl.hpp>
#include <limits>
#include <memory>
#include <tuple>
#include <vector>

#include "fedlora/common/simd.h"
#include "fedlora/model/onednn.h"

namespace fedlora::compress::internal {
namespace {

// One matmul primitive per shape (oneDNN picks its kernel and blocking for it); every product
// runs on one thread (Run).
struct Prim {
  dnnl::matmul::primitive_desc pd;
  dnnl::matmul matmul;
};

using PrimKey = std::tuple<int64_t, int64_t, int64_t, bool>;

// A [M, K] s8 times B [K, N] s8 -> C [M, N] f32. `b_transposed`: B is stored as [N, K]
// row-major (the weight itself, for x W^T); otherwise as [K, N] row-major (W, for dy W).
std::shared_ptr<const Prim> GetPrim(int64_t m, int64_t k, int64_t n, bool b_transposed) {
  static auto* cache = new model::onednn::PrimitiveCache<PrimKey, Prim>();
  return cache->Get({m, k, n, b_transposed}, [&] {
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    dnnl::memory::desc a({m, k}, dt::s8, tag::ab);
    dnnl::memory::desc b({k, n}, dt::s8, b_transposed ? tag::ba : tag::ab);
    dnnl::memory::desc c({m, n}, dt::f32, tag::ab);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);  // pooled: onednn::Execute
    auto prim = std::make_shared<Prim>();
    prim->pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, b, c), attr,
                                            model::onednn::Engine());
    prim->matmul = dnnl::matmul(prim->pd);
    return std::shared_ptr<const Prim>(prim);
  });
}

// Adding and subtracting 1.5 * 2^23 rounds a float of magnitude below 2^22 to the nearest
// integer (ties to even, as torch::round), branch-free, so the loop vectorizes.
constexpr float kRound = 12582912.0f;

// Quantizes each row of x [m, k] (times col_scale [k] when given) to int8 on its own
// symmetric scale: q = round(levels x / max|x|), row_scale = max|x| / levels. A row holding a NaN
// or an infinity gets codes 0 and a NaN scale, so the product's row is NaN, as it would be
// in float32.
FEDLORA_SIMD void QuantizeRows(const float* x, const float* col_scale, int64_t m, int64_t k,
                               float levels, int8_t* q, float* row_scale) {
  for (int64_t r = 0; r < m; ++r) {
    const float* xr = x + r * k;
    int8_t* qr = q + r * k;
    float mx = 0, poison = 0;
    if (col_scale != nullptr) {
#pragma omp simd reduction(max : mx) reduction(+ : poison)
      for (int64_t j = 0; j < k; ++j) {
        const float v = xr[j] * col_scale[j];
        mx = std::max(mx, std::fabs(v));
        poison += v * 0.0f;  // NaN for a NaN or infinite v, else 0
      }
    } else {
#pragma omp simd reduction(max : mx) reduction(+ : poison)
      for (int64_t j = 0; j < k; ++j) {
        mx = std::max(mx, std::fabs(xr[j]));
        poison += xr[j] * 0.0f;
      }
    }
    if (poison != 0.0f || !(mx <= std::numeric_limits<float>::max())) {
      row_scale[r] = std::numeric_limits<float>::quiet_NaN();
      std::fill(qr, qr + k, int8_t{0});
      continue;
    }
    row_scale[r] = mx / levels;
    const float inv = mx > 0 ? levels / mx : 0.0f;
    if (col_scale != nullptr) {
#pragma omp simd
      for (int64_t j = 0; j < k; ++j) {
        const float rounded = (xr[j] * col_scale[j] * inv + kRound) - kRound;
        qr[j] = static_cast<int8_t>(static_cast<int32_t>(rounded));
      }
    } else {
#pragma omp simd
      for (int64_t j = 0; j < k; ++j) {
        const float rounded = (xr[j] * inv + kRound) - kRound;
        qr[j] = static_cast<int8_t>(static_cast<int32_t>(rounded));
      }
    }
  }
}

// y[r, j] *= row_scale[r] * col_scale[j] (col_scale may be null: 1).
FEDLORA_SIMD void ScaleRows(float* y, const float* row_scale, const float* col_scale, int64_t m,
                            int64_t n) {
  for (int64_t r = 0; r < m; ++r) {
    float* yr = y + r * n;
    const float s = row_scale[r];
    if (col_scale != nullptr) {
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) yr[j] *= s * col_scale[j];
    } else {
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) yr[j] *= s;
    }
  }
}

// C [m, n] = A [m, k] s8 . B s8 (see GetPrim), on the calling thread alone. Training gets its
// parallelism from shards (a thread each); a product spread over OpenMP threads as well left
// them spinning against OpenBLAS's threads between products (measured with perf on a 2-core
// machine: libgomp's spin-wait took 20% of a one-pass step, which then ran no faster than
// float32), while one core of int8 outruns two of float32 several times over.
void Run(const int8_t* a, const int8_t* b, float* c, int64_t m, int64_t k, int64_t n,
         bool b_transposed) {
  try {
    std::shared_ptr<const Prim> p = GetPrim(m, k, n, b_transposed);
    const dnnl::engine& e = model::onednn::Engine();
    model::onednn::Execute(
        p->matmul, p->pd.scratchpad_desc(),
        {{DNNL_ARG_SRC, dnnl::memory(p->pd.src_desc(), e, const_cast<int8_t*>(a))},
         {DNNL_ARG_WEIGHTS, dnnl::memory(p->pd.weights_desc(), e, const_cast<int8_t*>(b))},
         {DNNL_ARG_DST, dnnl::memory(p->pd.dst_desc(), e, c)}});
  } catch (const dnnl::error& e) {
    TORCH_CHECK(false, "oneDNN int8 matmul [", m, " x ", k, "] x [", k, " x ", n,
                "] failed: ", e.what(), " (hint: set FEDLORA_INT8_COMPUTE=off)");
  }
}

torch::Tensor Rows(const torch::Tensor& x, int64_t k) {
  TORCH_CHECK(x.dim() >= 1 && x.size(-1) == k, "int8 product: input's last dimension is ",
              x.dim() >= 1 ? x.size(-1) : 0, ", expected ", k);
  return x.reshape({-1, k}).to(torch::kFloat).contiguous();
}

std::vector<int64_t> OutShape(const torch::Tensor& x, int64_t n) {
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = n;
  return shape;
}

}  // namespace

namespace {

// The instruction sets oneDNN runs int8 products on, and the largest weight code each allows.
// Without VNNI (AVX2, AVX-512 without VNNI), oneDNN multiplies u8 by s8 with vpmaddubsw,
// which adds pairs of products in 16 bits and saturates: 2 * 255 * 127 > 32767 (measured:
// with DNNL_MAX_CPU_ISA=AVX2 the products left the emulation). Weights of at most 63 keep
// every pair below 2^15 (2 * 255 * 63 = 32130). VNNI and AMX add in 32 bits.
struct IsaInfo {
  dnnl::cpu_isa isa;
  const char* name;
  int weight_levels;
};
constexpr IsaInfo kIsas[] = {{dnnl::cpu_isa::avx2, "avx2", 63},
                             {dnnl::cpu_isa::avx2_vnni, "avx2_vnni", 127},
                             {dnnl::cpu_isa::avx512_core, "avx512_core", 63},
                             {dnnl::cpu_isa::avx512_core_vnni, "avx512_core_vnni", 127},
                             {dnnl::cpu_isa::avx512_core_bf16, "avx512_core_bf16", 127},
                             {dnnl::cpu_isa::avx512_core_amx, "avx512_core_amx", 127}};

// The entry of the ISA oneDNN runs here; null when it is narrower than AVX2.
const IsaInfo* EffectiveIsa() {
  static const IsaInfo* info = [] {
    const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
    for (const IsaInfo& i : kIsas) {
      if (i.isa == isa) return &i;
    }
    return static_cast<const IsaInfo*>(nullptr);
  }();
  return info;
}

}  // namespace

std::string Int8Isa() { return EffectiveIsa() != nullptr ? EffectiveIsa()->name : ""; }

int WeightLevels() { return EffectiveIsa() != nullptr ? EffectiveIsa()->weight_levels : 63; }

Int8Matrix Int8Matrix::FromDense(const torch::Tensor& w) {
  TORCH_CHECK(w.dim() == 2, "Int8Matrix::FromDense: expected a 2-D weight");
  torch::NoGradGuard no_grad;
  torch::Tensor wf = w.to(torch::kFloat).contiguous();
  Int8Matrix out;
  out.codes_ = torch::empty({wf.size(0), wf.size(1)}, torch::kChar);
  out.scales_ = torch::empty({wf.size(0)}, torch::kFloat);
  // The same rounding as the inputs' rows, in place: no float temporaries beside `wf` (they
  // would raise the heap's high-water mark, which the allocator keeps; docs/device.md).
  QuantizeRows(wf.data_ptr<float>(), nullptr, wf.size(0), wf.size(1),
               static_cast<float>(WeightLevels()), out.codes_.data_ptr<int8_t>(),
               out.scales_.data_ptr<float>());
  return out;
}

torch::Tensor Int8Matrix::MulTransposed(const torch::Tensor& x) const {
  return Product(x, /*transposed=*/true);
}

torch::Tensor Int8Matrix::Mul(const torch::Tensor& dy) const {
  return Product(dy, /*transposed=*/false);
}

// x W^T (transposed: x [M, K], W's row scales applied to the output's columns) or x W (x
// [M, N], W's row scales folded into x's columns before its rows are quantized).
torch::Tensor Int8Matrix::Product(const torch::Tensor& x, bool transposed) const {
  const int64_t in = transposed ? cols() : rows(), out = transposed ? rows() : cols();
  const float* in_scale = transposed ? nullptr : scales_.data_ptr<float>();
  const float* out_scale = transposed ? scales_.data_ptr<float>() : nullptr;
  torch::Tensor x2 = Rows(x, in);
  const int64_t m = x2.size(0);
  torch::Tensor q = torch::empty({m, in}, torch::kChar);
  torch::Tensor rs = torch::empty({m}, torch::kFloat);
  QuantizeRows(x2.data_ptr<float>(), in_scale, m, in, 127.0f, q.data_ptr<int8_t>(),
               rs.data_ptr<float>());
  torch::Tensor y = torch::empty({m, out}, torch::kFloat);
  if (m > 0) {
    Run(q.data_ptr<int8_t>(), codes_.data_ptr<int8_t>(), y.data_ptr<float>(), m, in, out,
        transposed);
  }
  ScaleRows(y.data_ptr<float>(), rs.data_ptr<float>(), out_scale, m, out);
  return y.view(OutShape(x, out));
}

}  // namespace fedlora::compress::internal
