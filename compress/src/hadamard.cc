#include "fedlora/compress/hadamard.h"

#include <cmath>

#include "fedlora/common/random.h"

namespace fedlora::compress {

RandomHadamard::RandomHadamard(int64_t n, uint64_t seed) : n_(n), block_(1), seed_(seed) {
  while (block_ < 1024 && n % (block_ * 2) == 0) block_ *= 2;
  signs_ = torch::empty({n}, torch::kFloat);
  SplitMix64 rng(seed);
  float* s = signs_.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i) s[i] = (rng.NextU64() & 1) ? -1.0f : 1.0f;
}

torch::Tensor RandomHadamard::Fwht(const torch::Tensor& x) const {
  auto sizes = x.sizes().vec();
  torch::Tensor y = x.reshape({-1, n_ / block_, block_});
  for (int64_t h = 1; h < block_; h *= 2) {
    torch::Tensor v = y.reshape({y.size(0), n_ / block_, block_ / (2 * h), 2, h});
    torch::Tensor a = v.select(3, 0), b = v.select(3, 1);
    y = torch::stack({a + b, a - b}, 3).reshape({-1, n_ / block_, block_});
  }
  return (y * (1.0 / std::sqrt(static_cast<double>(block_)))).reshape(sizes);
}

torch::Tensor RandomHadamard::Apply(const torch::Tensor& x) const {
  return Fwht(x * signs_.to(x.scalar_type()));
}

torch::Tensor RandomHadamard::ApplyTransposed(const torch::Tensor& y) const {
  return Fwht(y) * signs_.to(y.scalar_type());
}

}  // namespace fedlora::compress
