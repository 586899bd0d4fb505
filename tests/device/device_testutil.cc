#include "device_testutil.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "fedlora/common/file_util.h"
#include "fedlora/model/checkpoint.h"
#include "fedlora/privacy/clipping.h"
#include "fedlora/privacy/params_wire.h"
#include "gtest/gtest.h"

namespace fedlora::testing {
namespace {

std::string SharedTokenizerDir() {
  return (std::filesystem::temp_directory_path() /
          ("fedlora_device_tok_" + std::to_string(::getpid())))
      .string();
}

}  // namespace

std::vector<std::string> MakeLines(int user, int count, uint64_t seed) {
  static const char* kNames[] = {"maya", "otto", "lena", "ravi", "zoe", "ike"};
  static const char* kFoods[] = {"tacos", "ramen", "pizza", "curry", "salad", "dumplings"};
  static const char* kPlaces[] = {"harbor", "park", "library", "station", "market", "beach"};
  static const char* kVerbs[] = {"meet", "see", "call", "text", "find", "join"};
  std::vector<std::string> out;
  uint64_t s = seed * 1000003 + static_cast<uint64_t>(user) * 7919 + 17;
  auto next = [&s] {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  };
  for (int i = 0; i < count; ++i) {
    std::string verb = kVerbs[next() % 6];
    std::string place = kPlaces[next() % 6];
    // The user's habits: their friend, food and sign-off.
    std::string name = kNames[user % 6];
    std::string food = kFoods[(user * 5 + 1) % 6];
    out.push_back("hey " + name + " want to " + verb + " at the " + place + " for " + food +
                  " later? cheers " + kNames[(user + 3) % 6]);
  }
  return out;
}

std::shared_ptr<const device::PublicLexicon> MakeLinesLexicon() {
  const device::KeyboardVocab kv = device::KeyboardVocab::FromTokenizer(SharedTokenizer());
  device::WordNgram pub;
  for (int u = 0; u < 6; ++u) pub.AddLines(SharedTokenizer(), kv, MakeLines(u, 20, 1));
  return std::make_shared<device::PublicLexicon>(pub, kv);
}

const model::Tokenizer& SharedTokenizer() {
  static std::unique_ptr<model::Tokenizer> tok;
  static std::once_flag once;
  std::call_once(once, [] {
    std::filesystem::path dir = SharedTokenizerDir();
    std::filesystem::create_directories(dir);
    std::string corpus = (dir / "corpus.txt").string();
    {
      std::ofstream out(corpus);
      for (int u = 0; u < 6; ++u) {
        for (const auto& l : MakeLines(u, 80, 1)) out << l << "\n";
      }
    }
    model::TokenizerTrainOptions o;
    o.vocab_size = 300;
    auto s = model::TrainTokenizer({corpus}, (dir / "tok").string(), o);
    if (!s.ok()) std::abort();
    auto t = model::Tokenizer::Load((dir / "tok.model").string(), 1, 2);
    if (!t.ok()) std::abort();
    tok = std::move(*t);
  });
  return *tok;
}

std::string SharedTokenizerPath() {
  SharedTokenizer();
  return (std::filesystem::path(SharedTokenizerDir()) / "tok.model").string();
}

model::LlamaConfig SmallConfig(int64_t hidden, int64_t layers) {
  model::LlamaConfig c;
  c.vocab_size = SharedTokenizer().vocab_size();
  c.hidden_size = hidden;
  c.intermediate_size = hidden * 2;
  c.num_hidden_layers = layers;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = hidden / 4;
  c.max_position_embeddings = 64;
  return c;
}

model::LlamaModel SmallModel(uint64_t seed, int64_t hidden, int64_t layers) {
  return model::LlamaModel::RandomInit(SmallConfig(hidden, layers), seed, 0.05);
}

void WriteModelDir(const std::string& dir, const model::LlamaConfig& config,
                   const std::string& tokenizer_path) {
  absl::Status s = model::SaveLlamaModel(model::LlamaModel::RandomInit(config, 1, 0.05), dir);
  if (!s.ok()) std::abort();
  std::error_code ec;
  std::filesystem::copy_file(tokenizer_path.empty() ? SharedTokenizerPath() : tokenizer_path,
                             std::filesystem::path(dir) / "tokenizer.model",
                             std::filesystem::copy_options::overwrite_existing, ec);
  if (ec) std::abort();
}

privacy::RoundPrivacyParams DistributedRoundParams(size_t dim, int expected, int min_clients,
                                                   double z, bool adaptive) {
  privacy::RoundPrivacyParams p;
  p.mode = privacy::DpMode::kDistributed;
  p.dim = dim;
  p.clip = 1;
  p.send_clip_bit = adaptive;
  p.value.dim = dim;
  p.value.expected_clients = expected;
  p.value.min_clients = min_clients;
  p.value.l2_clip = 1;
  p.value.bits = 20;
  p.value.noise_multiplier = z;
  if (adaptive) {
    auto split = privacy::AdaptiveClipNoiseParams(z, expected);
    if (!split.ok()) std::abort();
    p.value.noise_multiplier = split->value_noise_multiplier;
    auto count = privacy::ChooseCountDdgParams(split->clipped_count_stddev, expected, min_clients,
                                               p.value.bits);
    if (!count.ok()) std::abort();
    p.count = *count;
  }
  if (!privacy::ChooseDdgParams(p.value).ok()) std::abort();
  return p;
}

v1::Task TaskFor(const privacy::RoundPrivacyParams& params, uint32_t min_sum_devices,
                 uint64_t round) {
  v1::Task t;
  t.set_round(round);
  *t.mutable_privacy() = privacy::ParamsToProto(params);
  auto ddg = privacy::ChooseDdgParams(params.value);
  const size_t padded = ddg.ok() ? ddg->padded_dim : params.dim;
  t.mutable_secagg()->set_dim(padded + (params.count ? 1 : 0));
  t.mutable_secagg()->set_min_sum_devices(min_sum_devices);
  t.set_epsilon_observers_if_released(0.5);
  t.set_delta(1e-5);
  return t;
}

TempTextStore::TempTextStore(const std::string& name)
    : dir((std::filesystem::temp_directory_path() / ("fedlora_text_store_" + name)).string()) {
  std::filesystem::remove_all(dir);
  options.dir = dir + "/store";
  options.key_file = dir + "/key";
}

TempTextStore::~TempTextStore() { std::filesystem::remove_all(dir); }

std::string Slurp(const std::string& path) {
  auto bytes = ReadFileToString(path);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? *bytes : std::string();
}

void Spit(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

}  // namespace fedlora::testing
