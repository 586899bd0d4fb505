// LoadRuntime at the device boundary: a tokenizer and config.json that do not fit the model are
// refused with INVALID_ARGUMENT naming the file and the field, instead of a torch IndexError
// mid-evaluation; a tokenizer smaller than the vocabulary (padded vocabularies, the
// simulator's soft tokenizer vocab limit) still loads.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "device_testutil.h"
#include "fedlora/device/evaluate.h"
#include "fedlora/device/pretrain.h"
#include "fedlora/device/runtime.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora::device {
namespace {

namespace fs = std::filesystem;
using fedlora::testing::MakeLines;
using fedlora::testing::SharedTokenizer;
using fedlora::testing::SmallConfig;
using fedlora::testing::WriteModelDir;
using ::testing::AllOf;
using ::testing::HasSubstr;

class RuntimeLoadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = (fs::temp_directory_path() /
            ("fedlora_runtime_load_" + std::to_string(::getpid()) + "_" + info->name()))
               .string();
    fs::remove_all(dir_);
    pieces_ = SharedTokenizer().vocab_size();
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string File(const std::string& name) const { return (fs::path(dir_) / name).string(); }

  std::string dir_;
  int64_t pieces_ = 0;
};

TEST_F(RuntimeLoadTest, TokenizerWithMorePiecesThanVocabSizeRefused) {
  model::LlamaConfig c = SmallConfig(32, 1);
  c.vocab_size = pieces_ - 10;
  WriteModelDir(dir_, c);
  auto rt = LoadRuntime(dir_);
  ASSERT_FALSE(rt.ok()) << "a tokenizer larger than the embedding was accepted";
  EXPECT_EQ(rt.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(rt.status().message()),
              AllOf(HasSubstr(File("tokenizer.model")), HasSubstr(File("config.json")),
                    HasSubstr("vocab_size = " + std::to_string(pieces_ - 10)),
                    HasSubstr(std::to_string(pieces_) + " pieces"), HasSubstr("allowed"),
                    HasSubstr("hint:")));
}

// The Hugging Face fixture's 512-piece tokenizer beside a model of ~300 embedding rows.
TEST_F(RuntimeLoadTest, FixtureTokenizerLargerThanTinyModelRefused) {
  const std::string fixture =
      std::string(FEDLORA_SHARED_DIR) + "/fixtures/hf-tiny-llama/base/tokenizer.model";
  if (!fs::exists(fixture)) GTEST_SKIP() << "shared fixtures absent";
  model::LlamaConfig c = SmallConfig(32, 1);
  ASSERT_LT(c.vocab_size, 512);
  WriteModelDir(dir_, c, fixture);
  auto rt = LoadRuntime(dir_);
  ASSERT_FALSE(rt.ok());
  EXPECT_EQ(rt.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(rt.status().message()),
              AllOf(HasSubstr("512 pieces"), HasSubstr("vocab_size")));
}

TEST_F(RuntimeLoadTest, BosTokenIdOutsideTheTokenizerRefused) {
  model::LlamaConfig c = SmallConfig(32, 1);
  c.vocab_size = pieces_ + 40;  // inside the model's vocabulary, not a tokenizer piece
  c.bos_token_id = pieces_ + 5;
  WriteModelDir(dir_, c);
  auto rt = LoadRuntime(dir_);
  ASSERT_FALSE(rt.ok());
  EXPECT_EQ(rt.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(rt.status().message()),
              AllOf(HasSubstr(File("config.json")), HasSubstr(File("tokenizer.model")),
                    HasSubstr("bos_token_id = " + std::to_string(pieces_ + 5)),
                    HasSubstr("0.." + std::to_string(pieces_ - 1)), HasSubstr("hint:")));
}

TEST_F(RuntimeLoadTest, EosTokenIdOutsideTheTokenizerRefused) {
  model::LlamaConfig c = SmallConfig(32, 1);
  c.vocab_size = pieces_ + 40;
  c.eos_token_id = pieces_ + 39;
  WriteModelDir(dir_, c);
  auto rt = LoadRuntime(dir_);
  ASSERT_FALSE(rt.ok());
  EXPECT_EQ(rt.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(rt.status().message()),
              HasSubstr("eos_token_id = " + std::to_string(pieces_ + 39)));
}

TEST_F(RuntimeLoadTest, BosTokenIdAtVocabSizeRefusedNamingConfigJson) {
  model::LlamaConfig c = SmallConfig(32, 1);
  c.bos_token_id = c.vocab_size;
  WriteModelDir(dir_, c);
  auto rt = LoadRuntime(dir_);
  ASSERT_FALSE(rt.ok());
  EXPECT_EQ(rt.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(rt.status().message()),
              AllOf(HasSubstr(File("config.json")),
                    HasSubstr("bos_token_id = " + std::to_string(c.vocab_size))));
}

TEST_F(RuntimeLoadTest, ZeroMaxPositionEmbeddingsRefused) {
  model::LlamaConfig c = SmallConfig(32, 1);
  c.max_position_embeddings = 0;
  WriteModelDir(dir_, c);
  auto rt = LoadRuntime(dir_);
  ASSERT_FALSE(rt.ok());
  EXPECT_EQ(rt.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(rt.status().message()),
              AllOf(HasSubstr(File("config.json")), HasSubstr("max_position_embeddings = 0")));
}

// Vocabularies are often padded past the tokenizer (e.g. to a multiple of 64): that loads,
// and scoring works over the tokenizer's ids.
TEST_F(RuntimeLoadTest, TokenizerSmallerThanVocabularyLoads) {
  model::LlamaConfig c = SmallConfig(32, 1);
  c.vocab_size = pieces_ + 40;
  WriteModelDir(dir_, c);
  auto rt = LoadRuntime(dir_);
  ASSERT_TRUE(rt.ok()) << rt.status();
  EXPECT_EQ(rt->tokenizer->vocab_size(), pieces_);
  EXPECT_EQ(rt->model->config().vocab_size, pieces_ + 40);
  TextMetrics m = EvaluateTexts(*rt->model, *rt->tokenizer, MakeLines(1, 3, 9));
  EXPECT_GT(m.tokens, 0);
}

// The simulator pretrains its base with a soft tokenizer vocab limit: a small corpus yields
// fewer pieces than asked for, and the model is sized to the tokenizer. That must load.
TEST_F(RuntimeLoadTest, PretrainedModelWithSoftVocabLimitLoads) {
  fs::create_directories(dir_);
  const std::string corpus = File("corpus.txt");
  {
    std::ofstream out(corpus);
    for (int u = 0; u < 6; ++u) {
      for (const auto& l : MakeLines(u, 40, 3)) out << l << "\n";
    }
  }
  PretrainOptions o;
  o.vocab_size = 4000;  // far more than this corpus has
  o.hidden_size = 16;
  o.num_layers = 1;
  o.num_heads = 2;
  o.context = 16;
  o.train.max_steps = 2;
  o.train.batch_size = 2;
  auto r = Pretrain({corpus}, File("model"), o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_LT(r->config.vocab_size, 4000);
  auto rt = LoadRuntime(File("model"));
  ASSERT_TRUE(rt.ok()) << rt.status();
  EXPECT_EQ(rt->tokenizer->vocab_size(), rt->model->config().vocab_size);
}

// Pretraining flags that would give a model torch cannot run are refused before the tokenizer
// is trained (and before any training step).
TEST_F(RuntimeLoadTest, PretrainRefusesKvHeadsNotDividingHeads) {
  fs::create_directories(dir_);
  const std::string corpus = File("corpus.txt");
  {
    std::ofstream out(corpus);
    for (const auto& l : MakeLines(0, 40, 3)) out << l << "\n";
  }
  PretrainOptions o;
  o.hidden_size = 32;
  o.num_heads = 4;
  o.num_kv_heads = 3;
  o.context = 16;
  o.train.max_steps = 1;
  auto r = Pretrain({corpus}, File("model"), o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()),
              AllOf(HasSubstr("--kv-heads 3"), HasSubstr("--heads 4")));
  EXPECT_FALSE(fs::exists(File("model")));
}

TEST_F(RuntimeLoadTest, PretrainRefusesZeroHeadsAndContext) {
  PretrainOptions o;
  o.num_heads = 0;
  auto r = Pretrain({"unused.txt"}, File("model"), o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("--heads 0"));
  o = PretrainOptions();
  o.context = 0;
  r = Pretrain({"unused.txt"}, File("model"), o);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("--context 0"));
}

}  // namespace
}  // namespace fedlora::device
