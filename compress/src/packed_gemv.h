// y = x W^T for a few rows of x straight from 4-bit group-quantized codes (RtnWeight, GPTQ),
// without expanding W to float32: what decoding a token (the suggestion strip) needs, where
// expanding every projection per token costs more than the product itself.
#ifndef FEDLORA_COMPRESS_SRC_PACKED_GEMV_H_
#define FEDLORA_COMPRESS_SRC_PACKED_GEMV_H_

#include <cstdint>

#include <c10/util/Half.h>

namespace fedlora::compress::internal {

// The most rows for which the fused product beats expanding W and calling the BLAS.
constexpr int64_t kPackedGemvMaxRows = 8;

// x [rows, in] float32, codes: two 4-bit codes per byte (low nibble first), rows of W starting
// on byte boundaries (in even); scales / mins [out, groups] float16 with `group` even; writes
// y [rows, out]. Per row of W and group: scale * (x . q) + min * sum(x) over the group.
void Gemv4(const float* x, int64_t rows, int64_t in, const uint8_t* codes, const c10::Half* scales,
           const c10::Half* mins, int64_t out, int64_t group, float* y);

// One row of W (in even, group even) expanded to float32 into dst[0, in): Dense()'s fast path.
void ExpandRow4(const uint8_t* codes, const c10::Half* scales, const c10::Half* mins, int64_t in,
                int64_t group, float* dst);

}  // namespace fedlora::compress::internal

#endif  // FEDLORA_COMPRESS_SRC_PACKED_GEMV_H_
