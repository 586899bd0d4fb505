// Shared helpers for the adapters tests: a tiny random Llama and deterministic inputs.
#ifndef FEDLORA_TESTS_ADAPTERS_LORA_TESTUTIL_H_
#define FEDLORA_TESTS_ADAPTERS_LORA_TESTUTIL_H_

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "fedlora/adapters/lora_adapter.h"
#include "fedlora/model/llama.h"

namespace fedlora::adapters::testing {

// 2 layers, hidden 16, 4 heads of 4 (2 KV heads), MLP 24, vocab 64.
model::LlamaConfig TinyConfig();

// RandomInit of TinyConfig() (or `config`) with weights of std 0.3.
model::LlamaModel TinyModel(uint64_t seed = 7);
model::LlamaModel TinyModel(const model::LlamaConfig& config, uint64_t seed);

// [n, t] int64 token ids in [0, vocab), deterministic for `seed`.
torch::Tensor RandomIds(int64_t n, int64_t t, int64_t vocab, uint64_t seed);

// `count` floats ~ N(0, std), deterministic for `seed`.
std::vector<float> RandomFloats(size_t count, double std, uint64_t seed);

// An adapter for `config` with every A and B drawn from N(0, std) (so B != 0).
LoraAdapter RandomAdapter(const model::LlamaConfig& base, const LoraConfig& config, uint64_t seed,
                          double std = 0.2);

// A fresh temporary directory (removed by the caller or left in /tmp).
std::string TempDir(const std::string& tag);

}  // namespace fedlora::adapters::testing

#endif  // FEDLORA_TESTS_ADAPTERS_LORA_TESTUTIL_H_
