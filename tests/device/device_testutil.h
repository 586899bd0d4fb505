// Shared fixtures for device tests: a tokenizer trained on text the test writes, and a small
// random Llama model over it.
#ifndef FEDLORA_TESTS_DEVICE_DEVICE_TESTUTIL_H_
#define FEDLORA_TESTS_DEVICE_DEVICE_TESTUTIL_H_

#include <memory>
#include <string>
#include <vector>

#include "fedlora/device/text_store.h"
#include "fedlora/device/word_strip.h"
#include "fedlora/model/llama.h"
#include "fedlora/model/tokenizer.h"
#include "fedlora/privacy/prepare_update.h"
#include "fedlora/proto/fedlora_v1.pb.h"
#include "testutil/cli_runner.h"

namespace fedlora::testing {

// Deterministic chat-like lines: a shared template language; `user` picks habitual words.
std::vector<std::string> MakeLines(int user, int count, uint64_t seed);

// A tokenizer trained once per process on MakeLines of several users (vocab ~300).
const model::Tokenizer& SharedTokenizer();
// The tokenizer.model file SharedTokenizer was loaded from.
std::string SharedTokenizerPath();

// The config of SmallModel: SharedTokenizer's vocabulary, 4 heads over 2 key/value heads.
model::LlamaConfig SmallConfig(int64_t hidden = 64, int64_t layers = 2);

// A small random model over SharedTokenizer's vocabulary.
model::LlamaModel SmallModel(uint64_t seed, int64_t hidden = 64, int64_t layers = 2);

// A public lexicon and word n-gram counted on MakeLines of users 0..5 (20 lines each, seed 1)
// with SharedTokenizer: every name, food and place of MakeLines.
std::shared_ptr<const device::PublicLexicon> MakeLinesLexicon();

// Writes a model directory device::LoadRuntime reads: a random model of `config` (config.json,
// model.safetensors) and `tokenizer_path` (default SharedTokenizerPath()) as tokenizer.model.
// Aborts the test binary on failure (a fixture, not the code under test).
void WriteModelDir(const std::string& dir, const model::LlamaConfig& config,
                   const std::string& tokenizer_path = "");

// The distributed-DP round parameters a coordinator publishes (as RoundAggregator does): clip
// 1, 20 bits, `expected` devices with the noise calibrated for `min_clients`, total noise
// multiplier `z`, split by privacy::AdaptiveClipNoiseParams when `adaptive` (the clipped count
// then gets its own DDG parameters from ChooseCountDdgParams). Aborts the test binary on a
// setting the privacy library refuses (a fixture).
privacy::RoundPrivacyParams DistributedRoundParams(size_t dim, int expected, int min_clients,
                                                   double z, bool adaptive);

// A task for `params` (ParamsToProto) whose secure-aggregation session holds the whole input
// (padded values, then the count) and unmasks no sum of fewer than `min_sum_devices` inputs.
v1::Task TaskFor(const privacy::RoundPrivacyParams& params, uint32_t min_sum_devices,
                 uint64_t round = 1);

// CliResult, ShellQuote and RunFedlora: testutil/cli_runner.h.

// A text store in a fresh temporary folder "fedlora_text_store_<name>" (removed again when it
// goes out of scope): options.dir = <dir>/store, options.key_file = <dir>/key; File() is the
// store's file.
struct TempTextStore {
  explicit TempTextStore(const std::string& name);
  ~TempTextStore();
  std::string File() const { return options.dir + "/text.fls"; }
  std::string dir;
  device::TextStoreOptions options;
};

// A file's bytes (the test fails on a read error), and writing bytes over a file.
std::string Slurp(const std::string& path);
void Spit(const std::string& path, const std::string& data);

}  // namespace fedlora::testing

#endif  // FEDLORA_TESTS_DEVICE_DEVICE_TESTUTIL_H_
