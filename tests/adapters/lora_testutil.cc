#include "adapters/lora_testutil.h"

#include <ATen/ATen.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "testutil/tiny_llama.h"

namespace fedlora::adapters::testing {

model::LlamaConfig TinyConfig() { return fedlora::testing::TinyLlamaConfig(64, 16); }

model::LlamaModel TinyModel(uint64_t seed) { return TinyModel(TinyConfig(), seed); }

model::LlamaModel TinyModel(const model::LlamaConfig& config, uint64_t seed) {
  return model::LlamaModel::RandomInit(config, seed, 0.3);
}

torch::Tensor RandomIds(int64_t n, int64_t t, int64_t vocab, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  return at::randint(vocab, {n, t}, gen, torch::kInt64);
}

std::vector<float> RandomFloats(size_t count, double std, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  torch::Tensor t = at::normal(0.0, std, {static_cast<int64_t>(count)}, gen, torch::kFloat);
  return std::vector<float>(t.data_ptr<float>(), t.data_ptr<float>() + count);
}

LoraAdapter RandomAdapter(const model::LlamaConfig& base, const LoraConfig& config, uint64_t seed,
                          double std) {
  auto a = LoraAdapter::Create(base, config, seed);
  EXPECT_TRUE(a.ok()) << a.status();
  std::vector<float> flat = RandomFloats(a->NumParameters(), std, seed + 1000);
  EXPECT_TRUE(a->Unflatten(flat.data(), flat.size()).ok());
  return std::move(*a);
}

std::string TempDir(const std::string& tag) {
  static std::atomic<int> counter{0};
  std::filesystem::path p = std::filesystem::temp_directory_path() /
                            absl::StrCat("fedlora_adapters_", tag, "_", getpid(), "_", counter++);
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

}  // namespace fedlora::adapters::testing
