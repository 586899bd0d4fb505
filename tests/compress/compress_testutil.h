// Helpers for the compress tests: the shared fixture model, calibration ids, scratch dirs.
#ifndef FEDLORA_TESTS_COMPRESS_COMPRESS_TESTUTIL_H_
#define FEDLORA_TESTS_COMPRESS_COMPRESS_TESTUTIL_H_

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace fedlora::compress::testing {

// ../shared/fixtures/hf-tiny-llama/base, or "" when the shared folder is absent.
std::string FixtureModelDir();
// ../shared/data/wikitext2/valid.txt, or "" when absent.
std::string WikiTextPath();
// The first `max_bytes` bytes of WikiText-2 validation text ("" when absent).
std::string WikiTextPrefix(size_t max_bytes);
// A fresh, empty temporary directory whose name includes `tag` and the process id.
std::string FreshTempDir(const std::string& tag);
// A float [out, in] matrix with heavy-ish tails (normal plus a few outliers), deterministic.
torch::Tensor TestMatrix(int64_t out, int64_t in, uint64_t seed);
// A positive definite [n, n] Hessian X^T X / m of correlated inputs, float64, deterministic.
torch::Tensor TestHessian(int64_t n, uint64_t seed);

}  // namespace fedlora::compress::testing

#endif  // FEDLORA_TESTS_COMPRESS_COMPRESS_TESTUTIL_H_
