#include <ATen/Parallel.h>

#include "fedlora/compress/packed_weight.h"

namespace fedlora::compress {

double PackedWeight::bits_per_weight() const {
  return 8.0 * static_cast<double>(bytes()) / static_cast<double>(out_features() * in_features());
}

int64_t TensorBytes(const torch::Tensor& t) {
  return t.defined() ? t.numel() * static_cast<int64_t>(t.element_size()) : 0;
}

torch::Tensor PackBits(const torch::Tensor& codes, int bits) {
  TORCH_CHECK(bits >= 1 && bits <= 8, "PackBits: bits must be 1..8");
  torch::Tensor c = codes.reshape({-1}).to(torch::kInt32).contiguous();
  const int64_t n = c.numel();
  const int64_t nbytes = (n * bits + 7) / 8;
  torch::Tensor out = torch::zeros({nbytes}, torch::kUInt8);
  const int32_t* src = c.data_ptr<int32_t>();
  uint8_t* dst = out.data_ptr<uint8_t>();
  const uint32_t mask = (1u << bits) - 1u;
  for (int64_t i = 0; i < n; ++i) {
    TORCH_CHECK(src[i] >= 0 && static_cast<uint32_t>(src[i]) <= mask, "PackBits: code ", src[i],
                " does not fit in ", bits, " bits");
    const uint32_t v = static_cast<uint32_t>(src[i]);
    int64_t pos = i * bits;
    for (int k = 0; k < bits; ++k, ++pos) {
      if ((v >> k) & 1u) dst[pos >> 3] |= static_cast<uint8_t>(1u << (pos & 7));
    }
  }
  return out;
}

torch::Tensor UnpackBits(const torch::Tensor& packed, int bits, int64_t count) {
  TORCH_CHECK(bits >= 1 && bits <= 8, "UnpackBits: bits must be 1..8");
  torch::Tensor p = packed.contiguous();
  TORCH_CHECK(p.numel() * 8 >= count * bits, "UnpackBits: stream too short");
  torch::Tensor out = torch::empty({count}, torch::kUInt8);
  const uint8_t* src = p.data_ptr<uint8_t>();
  uint8_t* dst = out.data_ptr<uint8_t>();
  const int64_t nbytes = p.numel();
  at::parallel_for(0, count, 1 << 14, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) dst[i] = static_cast<uint8_t>(ReadCode(src, nbytes, i, bits));
  });
  return out;
}

}  // namespace fedlora::compress
