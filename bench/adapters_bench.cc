// Costs of the LoRA adapter operations on the default LlamaConfig (hidden 512, 8 layers):
// flat (de)serialisation for aggregation, merge, and the forward overhead of an attached adapter.
#include <benchmark/benchmark.h>
#include <torch/types.h>

#include "fedlora/adapters/lora_adapter.h"

namespace fedlora::adapters {
namespace {

LoraConfig AllTargets(int rank) {
  LoraConfig c;
  c.rank = rank;
  c.targets = {model::Proj::kQ,    model::Proj::kK,  model::Proj::kV,   model::Proj::kO,
               model::Proj::kGate, model::Proj::kUp, model::Proj::kDown};
  return c;
}

void BM_Flatten(benchmark::State& state) {
  auto a = LoraAdapter::Create(model::LlamaConfig{}, AllTargets(state.range(0)), 1);
  for (auto _ : state) benchmark::DoNotOptimize(a->Flatten());
  state.counters["floats"] = static_cast<double>(a->NumParameters());
  state.SetBytesProcessed(state.iterations() * a->NumParameters() * 4);
}
BENCHMARK(BM_Flatten)->Arg(8)->Arg(32);

void BM_Unflatten(benchmark::State& state) {
  auto a = LoraAdapter::Create(model::LlamaConfig{}, AllTargets(state.range(0)), 1);
  std::vector<float> flat = a->Flatten();
  for (auto _ : state) benchmark::DoNotOptimize(a->Unflatten(flat.data(), flat.size()));
  state.SetBytesProcessed(state.iterations() * a->NumParameters() * 4);
}
BENCHMARK(BM_Unflatten)->Arg(8)->Arg(32);

void BM_MergeUnmerge(benchmark::State& state) {
  model::LlamaConfig c;
  model::LlamaModel m = model::LlamaModel::RandomInit(c, 1);
  auto a = LoraAdapter::Create(c, AllTargets(state.range(0)), 1);
  for (auto _ : state) {
    benchmark::DoNotOptimize(a->Merge(m));
    benchmark::DoNotOptimize(a->Unmerge(m));
  }
}
BENCHMARK(BM_MergeUnmerge)->Arg(8)->Unit(benchmark::kMillisecond);

// Forward of a [4, 64] batch with no adapter (range 0) or an attached all-target r=8 adapter.
void BM_Forward(benchmark::State& state) {
  model::LlamaConfig c;
  model::LlamaModel m = model::LlamaModel::RandomInit(c, 1);
  auto a = LoraAdapter::Create(c, AllTargets(8), 1);
  if (state.range(0)) (void)a->Attach(m);
  torch::Tensor ids = torch::randint(c.vocab_size, {4, 64}, torch::kInt64);
  torch::NoGradGuard no_grad;
  for (auto _ : state) benchmark::DoNotOptimize(m.Forward(ids));
}
BENCHMARK(BM_Forward)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace fedlora::adapters

BENCHMARK_MAIN();
