// Compressed checkpoint directories: round trip, loading through device::LoadRuntime, and
// refusal of corrupt or inconsistent files with the tensor named.
#include "fedlora/compress/checkpoint.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "compress/compress_testutil.h"
#include "fedlora/common/file_util.h"
#include "fedlora/compress/compress_model.h"
#include "fedlora/device/runtime.h"
#include "fedlora/io/model_identity.h"
#include "fedlora/io/safetensors.h"

namespace fedlora::compress {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;

class CompressedCheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    src_ = testing::FixtureModelDir();
    if (src_.empty()) GTEST_SKIP() << "../shared absent";
    out_ = testing::FreshTempDir("ckpt");
  }
  void TearDown() override {
    if (!out_.empty()) fs::remove_all(out_);
  }
  // Compresses the fixture with `o` into out_/name; returns the in-memory compressed runtime.
  device::Runtime Compress(const CompressOptions& o, const std::string& name) {
    auto rt = device::LoadRuntime(src_);
    EXPECT_TRUE(rt.ok()) << rt.status();
    auto report = CompressModel(*rt->model, o);
    EXPECT_TRUE(report.ok()) << report.status();
    EXPECT_TRUE(
        SaveCompressedModel(*rt->model, src_, out_ + "/" + name, {{"method", o.method}}).ok());
    return std::move(*rt);
  }
  std::string src_, out_;
};

CompressOptions Opts(const std::string& method, int bits) {
  CompressOptions o;
  o.method = method;
  o.bits = bits;
  o.group = 32;
  o.progress = false;
  return o;
}

TEST_F(CompressedCheckpointTest, RoundTripsEveryFormatThroughLoadRuntime) {
  std::vector<CompressOptions> all = {Opts("int8", 8), Opts("rtn", 3), Opts("nf4", 4)};
  CompressOptions pruned = Opts("rtn", 4);
  pruned.prune = "2:4";
  all.push_back(pruned);
  CompressOptions cal = Opts("caldera", 2);
  cal.rank = 4;
  cal.iterations = 1;
  cal.calib_ids = std::vector<int64_t>(200);
  for (size_t i = 0; i < cal.calib_ids.size(); ++i)
    cal.calib_ids[i] = static_cast<int64_t>(i * 7 % 500);
  all.push_back(cal);
  cal.hadamard = true;
  all.push_back(cal);
  torch::Tensor ids = torch::randint(3, 500, {1, 12}, torch::kInt64);
  for (size_t i = 0; i < all.size(); ++i) {
    const std::string name = "m" + std::to_string(i);
    device::Runtime mem = Compress(all[i], name);
    auto loaded = device::LoadRuntime(out_ + "/" + name);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    for (size_t l = 0; l < mem.model->layers.size(); ++l) {
      for (int p = 0; p < model::kNumProj; ++p) {
        ASSERT_TRUE(loaded->model->layers[l].proj[p].frozen) << all[i].method;
        EXPECT_TRUE(torch::equal(loaded->model->layers[l].proj[p].DenseWeight(),
                                 mem.model->layers[l].proj[p].DenseWeight()))
            << all[i].method << (all[i].hadamard ? " hadamard" : "") << " layer " << l << " proj "
            << p << " max diff "
            << (loaded->model->layers[l].proj[p].DenseWeight() -
                mem.model->layers[l].proj[p].DenseWeight())
                   .abs()
                   .max()
                   .item<float>();
      }
    }
    torch::NoGradGuard g;
    EXPECT_TRUE(torch::allclose(loaded->model->Forward(ids), mem.model->Forward(ids), 1e-5, 1e-5));
    auto info = ReadCompressionJson(out_ + "/" + name);
    ASSERT_TRUE(info.ok());
    EXPECT_EQ((*info)["source_sha256"], *io::ModelSha256(src_));
    EXPECT_TRUE(fs::exists(out_ + "/" + name + "/tokenizer.model"));
    EXPECT_LT(ResidentWeightBytes(*loaded->model),
              ResidentWeightBytes(*device::LoadRuntime(src_)->model));
  }
}

TEST_F(CompressedCheckpointTest, RefusesCorruptAndInconsistentFiles) {
  Compress(Opts("rtn", 4), "ok");
  const std::string dir = out_ + "/ok";
  auto copy = [&](const std::string& name) {
    fs::copy(dir, out_ + "/" + name, fs::copy_options::recursive);
    return out_ + "/" + name;
  };
  // 1. A flipped byte in the weights: the hash check names the file.
  {
    std::string d = copy("flip");
    auto bytes = *ReadFileToString(d + "/model.safetensors");
    bytes[bytes.size() - 3] ^= 0x40;
    ASSERT_TRUE(WriteFileAtomic(d + "/model.safetensors", bytes).ok());
    auto rt = device::LoadRuntime(d);
    ASSERT_FALSE(rt.ok());
    EXPECT_THAT(
        std::string(rt.status().message()),
        AllOf(HasSubstr("model.safetensors"), HasSubstr("weights_sha256"), HasSubstr("hint")));
  }
  // 2. compression.json claims 3 bits for a 4-bit tensor: the codes' size no longer matches.
  {
    std::string d = copy("bits");
    auto j = nlohmann::json::parse(*ReadFileToString(d + "/compression.json"));
    j["tensors"]["model.layers.1.mlp.up_proj.weight"]["bits"] = 3;
    ASSERT_TRUE(WriteFileAtomic(d + "/compression.json", j.dump()).ok());
    auto rt = device::LoadRuntime(d);
    ASSERT_FALSE(rt.ok());
    EXPECT_THAT(std::string(rt.status().message()),
                AllOf(HasSubstr("model.layers.1.mlp.up_proj.codes"), HasSubstr("hint")));
  }
  // 3. A tensor dropped from compression.json: its packed parts become unexpected.
  {
    std::string d = copy("drop");
    auto j = nlohmann::json::parse(*ReadFileToString(d + "/compression.json"));
    j["tensors"].erase("model.layers.0.self_attn.k_proj.weight");
    ASSERT_TRUE(WriteFileAtomic(d + "/compression.json", j.dump()).ok());
    auto rt = device::LoadRuntime(d);
    ASSERT_FALSE(rt.ok());
    EXPECT_THAT(std::string(rt.status().message()),
                HasSubstr("model.layers.0.self_attn.k_proj.weight"));
  }
  // 4. An unknown format name.
  {
    std::string d = copy("fmt");
    auto j = nlohmann::json::parse(*ReadFileToString(d + "/compression.json"));
    j["tensors"]["model.layers.0.mlp.down_proj.weight"]["format"] = "q9";
    ASSERT_TRUE(WriteFileAtomic(d + "/compression.json", j.dump()).ok());
    auto rt = device::LoadRuntime(d);
    ASSERT_FALSE(rt.ok());
    EXPECT_THAT(std::string(rt.status().message()),
                AllOf(HasSubstr("model.layers.0.mlp.down_proj"), HasSubstr("q9")));
  }
  // 5. compression.json not JSON.
  {
    std::string d = copy("json");
    ASSERT_TRUE(WriteFileAtomic(d + "/compression.json", "{oops").ok());
    auto rt = device::LoadRuntime(d);
    ASSERT_FALSE(rt.ok());
    EXPECT_THAT(std::string(rt.status().message()), HasSubstr("compression.json"));
  }
  // 6. NaN scales (hash updated so only the finiteness check can catch it).
  {
    std::string d = copy("nan");
    auto f = io::SafetensorsFile::Open(d + "/model.safetensors");
    ASSERT_TRUE(f.ok());
    std::vector<io::TensorView> views = (*f)->tensors();
    std::vector<std::string> keep;
    for (auto& v : views) {
      if (v.name == "model.layers.0.mlp.gate_proj.scales") {
        keep.emplace_back(reinterpret_cast<const char*>(v.data), v.nbytes);
        keep.back()[1] = static_cast<char>(0x7e);  // 0x7exx: a NaN half
        v.data = reinterpret_cast<const uint8_t*>(keep.back().data());
      }
    }
    ASSERT_TRUE(io::WriteSafetensors(d + "/x.safetensors", views).ok());
    f->reset();
    fs::rename(d + "/x.safetensors", d + "/model.safetensors");
    auto j = nlohmann::json::parse(*ReadFileToString(d + "/compression.json"));
    j.erase("weights_sha256");
    ASSERT_TRUE(WriteFileAtomic(d + "/compression.json", j.dump()).ok());
    auto rt = device::LoadRuntime(d);
    ASSERT_FALSE(rt.ok());
    EXPECT_THAT(std::string(rt.status().message()),
                AllOf(HasSubstr("model.layers.0.mlp.gate_proj.weight"), HasSubstr("non-finite")));
  }
}

}  // namespace
}  // namespace fedlora::compress
