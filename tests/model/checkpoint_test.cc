// SaveLlamaModel / LoadLlamaModel on tiny random models: exact round trips (tied, untied,
// sharded, writable), half-precision upcasting, and the errors for broken directories.
#include "fedlora/model/checkpoint.h"

#include <torch/types.h>
#include <torch/utils.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "fedlora/io/safetensors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model_testutil.h"
#include "nlohmann/json.hpp"

namespace fedlora::model {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using testing::TinyConfig;

// A tensor read out of a safetensors file into owned memory.
struct OwnedTensor {
  std::string name;
  io::DType dtype = io::DType::kF32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

std::vector<OwnedTensor> ReadAll(const std::string& path) {
  auto file = io::SafetensorsFile::Open(path);
  EXPECT_TRUE(file.ok()) << file.status();
  std::vector<OwnedTensor> out;
  if (!file.ok()) return out;
  for (const auto& v : (*file)->tensors()) {
    out.push_back({v.name, v.dtype, v.shape, std::vector<uint8_t>(v.data, v.data + v.nbytes)});
  }
  return out;
}

absl::Status WriteAll(const std::string& path, const std::vector<OwnedTensor>& tensors) {
  std::vector<io::TensorView> views;
  for (const auto& t : tensors) {
    io::TensorView v;
    v.name = t.name;
    v.dtype = t.dtype;
    v.shape = t.shape;
    v.data = t.bytes.data();
    v.nbytes = t.bytes.size();
    views.push_back(std::move(v));
  }
  return io::WriteSafetensors(path, views, {{"format", "pt"}});
}

// Converts every F32 tensor to F16 or BF16 with io's round-to-nearest-even converters.
void ConvertAll(std::vector<OwnedTensor>* tensors, io::DType to) {
  for (auto& t : *tensors) {
    ASSERT_EQ(t.dtype, io::DType::kF32) << t.name;
    const size_t n = t.bytes.size() / sizeof(float);
    std::vector<uint8_t> half(n * 2);
    for (size_t i = 0; i < n; ++i) {
      float f;
      std::memcpy(&f, t.bytes.data() + 4 * i, 4);
      uint16_t h = to == io::DType::kF16 ? io::FloatToHalf(f) : io::FloatToBFloat16(f);
      std::memcpy(half.data() + 2 * i, &h, 2);
    }
    t.dtype = to;
    t.bytes = std::move(half);
  }
}

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = (fs::temp_directory_path() /
            ("fedlora_ckpt_" + std::to_string(::getpid()) + "_" + info->name()))
               .string();
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Saves a random model into dir_ and returns it.
  LlamaModel SaveRandom(bool tied, uint64_t seed = 7) {
    LlamaModel m = LlamaModel::RandomInit(TinyConfig(tied), seed);
    absl::Status s = SaveLlamaModel(m, dir_);
    EXPECT_TRUE(s.ok()) << s;
    return m;
  }
  std::string Weights() const { return (fs::path(dir_) / "model.safetensors").string(); }

  std::string dir_;
};

torch::Tensor Ids() {
  return torch::tensor({1, 5, 9, 3, 44, 17, 2, 0, 49}, torch::kInt64).unsqueeze(0);
}

void ExpectSameModel(const LlamaModel& a, const LlamaModel& b) {
  auto pa = a.NamedParameters();
  auto pb = b.NamedParameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    ASSERT_EQ(pa[i].first, pb[i].first);
    ASSERT_TRUE(pb[i].second->defined()) << pb[i].first;
    EXPECT_EQ(pb[i].second->scalar_type(), torch::kFloat) << pb[i].first;
    EXPECT_TRUE(torch::equal(*pa[i].second, *pb[i].second)) << pa[i].first << " differs";
  }
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(a.Forward(Ids()), b.Forward(Ids())));
}

TEST_F(CheckpointTest, UntiedRoundTripIsBitIdentical) {
  LlamaModel m = SaveRandom(/*tied=*/false);
  EXPECT_TRUE(fs::exists(fs::path(dir_) / "config.json"));
  auto loaded = LoadLlamaModel(dir_);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->config().NumParameters(), m.config().NumParameters());
  EXPECT_FALSE((*loaded)->config().tie_word_embeddings);
  ASSERT_TRUE((*loaded)->lm_head.defined());
  ExpectSameModel(m, **loaded);
  // The head really is separate from the embeddings.
  EXPECT_FALSE(torch::equal((*loaded)->lm_head, (*loaded)->embed_tokens));
  for (auto& [name, t] : (*loaded)->NamedParameters()) EXPECT_FALSE(t->requires_grad()) << name;
}

TEST_F(CheckpointTest, TiedRoundTripHasNoHeadTensor) {
  LlamaModel m = SaveRandom(/*tied=*/true);
  std::vector<OwnedTensor> file = ReadAll(Weights());
  for (const auto& t : file) EXPECT_NE(t.name, "lm_head.weight");
  // embed + 2 layers x (7 projections + 2 norms) + final norm.
  EXPECT_EQ(file.size(), 1u + 2 * 9 + 1);
  auto loaded = LoadLlamaModel(dir_);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE((*loaded)->config().tie_word_embeddings);
  EXPECT_FALSE((*loaded)->lm_head.defined());
  ExpectSameModel(m, **loaded);
}

TEST_F(CheckpointTest, WritableLoadCopiesAndLeavesFileIntact) {
  LlamaModel m = SaveRandom(false);
  LoadOptions lo;
  lo.writable = true;
  auto loaded = LoadLlamaModel(dir_, lo);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ExpectSameModel(m, **loaded);
  {
    torch::NoGradGuard no_grad;
    for (auto& [name, t] : (*loaded)->NamedParameters()) t->add_(1.0f);  // must not crash
  }
  auto again = LoadLlamaModel(dir_);
  ASSERT_TRUE(again.ok()) << again.status();
  ExpectSameModel(m, **again);
}

TEST_F(CheckpointTest, ExtraUnusedTensorsAreIgnored) {
  // Older Hugging Face checkpoints carry rotary inv_freq buffers.
  LlamaModel m = SaveRandom(false);
  std::vector<OwnedTensor> file = ReadAll(Weights());
  OwnedTensor extra{"model.layers.0.self_attn.rotary_emb.inv_freq",
                    io::DType::kF32,
                    {4},
                    std::vector<uint8_t>(16, 0)};
  file.push_back(extra);
  ASSERT_TRUE(WriteAll(Weights(), file).ok());
  auto loaded = LoadLlamaModel(dir_);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ExpectSameModel(m, **loaded);
}

TEST_F(CheckpointTest, MissingTensorNamedAsMissing) {
  for (const char* missing_c : {"model.layers.1.mlp.down_proj.weight", "lm_head.weight"}) {
    const std::string missing = missing_c;
    SaveRandom(false);
    std::vector<OwnedTensor> file = ReadAll(Weights());
    std::vector<OwnedTensor> kept;
    for (auto& t : file) {
      if (t.name != missing) kept.push_back(std::move(t));
    }
    ASSERT_EQ(kept.size() + 1, file.size());
    ASSERT_TRUE(WriteAll(Weights(), kept).ok());
    auto loaded = LoadLlamaModel(dir_);
    ASSERT_FALSE(loaded.ok()) << missing;
    EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(loaded.status().message()),
                AllOf(HasSubstr("'" + missing + "'"), HasSubstr("missing")));
  }
}

TEST_F(CheckpointTest, WrongShapeGivesBothShapes) {
  SaveRandom(false);
  std::vector<OwnedTensor> file = ReadAll(Weights());
  bool replaced = false;
  for (auto& t : file) {
    if (t.name == "model.layers.0.self_attn.q_proj.weight") {
      ASSERT_EQ(t.shape, (std::vector<int64_t>{16, 16}));
      t.shape = {8, 16};
      t.bytes.resize(8 * 16 * 4);
      replaced = true;
    }
  }
  ASSERT_TRUE(replaced);
  ASSERT_TRUE(WriteAll(Weights(), file).ok());
  auto loaded = LoadLlamaModel(dir_);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(loaded.status().message()),
              AllOf(HasSubstr("model.layers.0.self_attn.q_proj.weight"), HasSubstr("[8, 16]"),
                    HasSubstr("[16, 16]"), HasSubstr("model.safetensors")));
}

// F16 / BF16 checkpoints load as float32 equal to the exact upcast of the stored values.
void CheckHalfPrecision(const std::string& dir, const LlamaModel& m, io::DType dtype,
                        double logit_tol) {
  const std::string weights = (fs::path(dir) / "model.safetensors").string();
  std::vector<OwnedTensor> file = ReadAll(weights);
  ConvertAll(&file, dtype);
  ASSERT_TRUE(WriteAll(weights, file).ok());
  auto loaded = LoadLlamaModel(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  auto pa = m.NamedParameters();
  auto pb = (*loaded)->NamedParameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    const torch::Tensor& orig = *pa[i].second;
    const torch::Tensor& got = *pb[i].second;
    ASSERT_EQ(got.scalar_type(), torch::kFloat) << pb[i].first;
    ASSERT_EQ(got.sizes(), orig.sizes()) << pb[i].first;
    torch::Tensor want =
        orig.to(dtype == io::DType::kF16 ? torch::kHalf : torch::kBFloat16).to(torch::kFloat);
    EXPECT_TRUE(torch::equal(got, want)) << pb[i].first << " is not the exact upcast";
    // And close to the float32 original within the format's precision (2^-11 / 2^-8).
    const double rel = dtype == io::DType::kF16 ? 1e-3 : 8e-3;
    EXPECT_TRUE(torch::allclose(got, orig, rel, 1e-6)) << pb[i].first;
  }
  torch::NoGradGuard no_grad;
  torch::Tensor a = m.Forward(Ids()), b = (*loaded)->Forward(Ids());
  EXPECT_LT((a - b).abs().max().item<double>(), logit_tol);
  EXPECT_FALSE(torch::equal(a, b)) << "precision loss expected to be visible";
}

TEST_F(CheckpointTest, F16CheckpointUpcastsToF32) {
  LlamaModel m = SaveRandom(false);
  CheckHalfPrecision(dir_, m, io::DType::kF16, 1e-3);
}

TEST_F(CheckpointTest, BF16CheckpointUpcastsToF32) {
  LlamaModel m = SaveRandom(true);
  CheckHalfPrecision(dir_, m, io::DType::kBF16, 1e-2);
}

TEST_F(CheckpointTest, ShardedCheckpointLoadsIdentically) {
  LlamaModel m = SaveRandom(false);
  std::vector<OwnedTensor> file = ReadAll(Weights());
  std::vector<OwnedTensor> shard1, shard2;
  nlohmann::json weight_map = nlohmann::json::object();
  for (auto& t : file) {
    const bool first = t.name.find("layers.1.") == std::string::npos && t.name != "lm_head.weight";
    const char* shard =
        first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
    weight_map[t.name] = shard;
    (first ? shard1 : shard2).push_back(std::move(t));
  }
  ASSERT_FALSE(shard1.empty());
  ASSERT_FALSE(shard2.empty());
  ASSERT_TRUE(
      WriteAll((fs::path(dir_) / "model-00001-of-00002.safetensors").string(), shard1).ok());
  ASSERT_TRUE(
      WriteAll((fs::path(dir_) / "model-00002-of-00002.safetensors").string(), shard2).ok());
  fs::remove(Weights());
  {
    std::ofstream out(fs::path(dir_) / "model.safetensors.index.json");
    out << nlohmann::json{{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}}.dump(2);
  }
  auto loaded = LoadLlamaModel(dir_);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ExpectSameModel(m, **loaded);

  // A shard the index names but that is absent is NOT_FOUND naming it.
  fs::remove(fs::path(dir_) / "model-00002-of-00002.safetensors");
  auto broken = LoadLlamaModel(dir_);
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(broken.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(broken.status().message()), HasSubstr("model-00002-of-00002"));
}

TEST_F(CheckpointTest, MalformedIndexIsClearError) {
  SaveRandom(false);
  fs::remove(Weights());
  const fs::path index = fs::path(dir_) / "model.safetensors.index.json";
  for (const std::string& text :
       {std::string("{\"weight_map\": {"), std::string("{\"metadata\": {}}"),
        std::string("{\"weight_map\": [\"a\"]}"),
        std::string("{\"weight_map\": {\"model.norm.weight\": 3}}"),
        std::string("{\"weight_map\": {\"model.norm.weight\": \"../x.safetensors\"}}")}) {
    {
      std::ofstream out(index);
      out << text;
    }
    auto loaded = LoadLlamaModel(dir_);
    ASSERT_FALSE(loaded.ok()) << text;
    EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(std::string(loaded.status().message()), HasSubstr("model.safetensors.index.json"))
        << text;
  }
}

TEST_F(CheckpointTest, MissingConfigIsNotFoundNamingPath) {
  SaveRandom(false);
  fs::remove(fs::path(dir_) / "config.json");
  auto loaded = LoadLlamaModel(dir_);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(loaded.status().message()),
              HasSubstr((fs::path(dir_) / "config.json").string()));
}

TEST_F(CheckpointTest, NoWeightsIsNotFound) {
  SaveRandom(false);
  fs::remove(Weights());
  auto loaded = LoadLlamaModel(dir_);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(loaded.status().message()), HasSubstr(dir_));
}

TEST_F(CheckpointTest, MalformedSafetensorsHeaderNamesFile) {
  SaveRandom(false);
  {
    std::ofstream out(Weights(), std::ios::binary | std::ios::trunc);
    const uint64_t n = 16;
    out.write(reinterpret_cast<const char*>(&n), 8);
    out << "{not json at all";
  }
  auto loaded = LoadLlamaModel(dir_);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(loaded.status().message()), HasSubstr(Weights()));
}

TEST_F(CheckpointTest, IntegerTensorNamesTensorAndDtype) {
  SaveRandom(false);
  std::vector<OwnedTensor> file = ReadAll(Weights());
  bool replaced = false;
  for (auto& t : file) {
    if (t.name == "model.norm.weight") {
      t.dtype = io::DType::kI32;  // same byte count: 16 x 4
      replaced = true;
    }
  }
  ASSERT_TRUE(replaced);
  ASSERT_TRUE(WriteAll(Weights(), file).ok());
  auto loaded = LoadLlamaModel(dir_);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(loaded.status().message()),
              AllOf(HasSubstr("model.norm.weight"), HasSubstr("I32")));
}

TEST_F(CheckpointTest, ConfigMismatchingWeightsIsShapeError) {
  SaveRandom(false);
  // Same file, config claims a wider MLP.
  nlohmann::json cfg = LlamaConfigToJson(TinyConfig(false));
  cfg["intermediate_size"] = 32;
  {
    std::ofstream out(fs::path(dir_) / "config.json");
    out << cfg.dump();
  }
  auto loaded = LoadLlamaModel(dir_);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(loaded.status().message()),
              AllOf(HasSubstr("[24, 16]"), HasSubstr("[32, 16]")));
}

}  // namespace
}  // namespace fedlora::model
