// Release formats on the tiny Llama fixture (a real HF model + PEFT adapter in ../shared):
// GGUF LoRA as llama.cpp's convert_lora_to_gguf.py writes it, read back and imported, and a
// merged Hugging Face checkpoint equal to base + adapter.
#include <torch/types.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "adapters/lora_testutil.h"
#include "fedlora/adapters/export_gguf.h"
#include "fedlora/adapters/export_merged.h"
#include "fedlora/common/file_util.h"
#include "fedlora/device/runtime.h"
#include "fedlora/io/safetensors.h"
#include "fedlora/model/checkpoint.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace fedlora::adapters {
namespace {

namespace fs = std::filesystem;

std::string FixtureDir() { return std::string(FEDLORA_SHARED_DIR) + "/fixtures/hf-tiny-llama"; }

torch::Tensor FromGguf(const GgufTensor& t) {
  auto v = t.ToFloat();
  EXPECT_TRUE(v.ok()) << v.status();
  return torch::tensor(*v, torch::kFloat).reshape(t.TorchShape());
}

bool BitEqual(const torch::Tensor& a, const torch::Tensor& b) {
  torch::Tensor x = a.detach().contiguous(), y = b.detach().contiguous();
  return x.sizes().equals(y.sizes()) &&
         std::memcmp(x.data_ptr<float>(), y.data_ptr<float>(), x.numel() * 4) == 0;
}

void ExpectSameAdapter(const LoraAdapter& a, const LoraAdapter& b) {
  ASSERT_EQ(a.slots().size(), b.slots().size());
  EXPECT_TRUE(ConfigsCompatible(a.config(), b.config()));
  EXPECT_DOUBLE_EQ(a.scaling(), b.scaling());
  for (size_t i = 0; i < a.slots().size(); ++i) {
    EXPECT_EQ(a.slots()[i].layer, b.slots()[i].layer);
    EXPECT_EQ(a.slots()[i].proj, b.slots()[i].proj);
    EXPECT_TRUE(BitEqual(a.slots()[i].A, b.slots()[i].A)) << "slot " << i;
    EXPECT_TRUE(BitEqual(a.slots()[i].B, b.slots()[i].B)) << "slot " << i;
  }
}

// Row i of the GGUF lora_b must be row src(i) of B, written out independently of the
// exporter: within head h of d rows, GGUF row 2j + s holds HF row s * d/2 + j.
void ExpectRotaryPermuted(const torch::Tensor& gguf_b, const torch::Tensor& b, int64_t heads) {
  ASSERT_TRUE(gguf_b.sizes().equals(b.sizes()));
  const int64_t d = b.size(0) / heads;
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t j = 0; j < d / 2; ++j) {
      for (int64_t s = 0; s < 2; ++s) {
        EXPECT_TRUE(torch::equal(gguf_b[h * d + 2 * j + s], b[h * d + s * (d / 2) + j]))
            << "head " << h << " j " << j << " s " << s;
      }
    }
  }
}

class ExportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(FixtureDir() + "/reference.json")) GTEST_SKIP() << "shared fixtures absent";
    std::ifstream in(FixtureDir() + "/reference.json");
    reference_ = nlohmann::json::parse(in);
    auto model = model::LoadLlamaModel(FixtureDir() + "/base");
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::move(*model);
    auto adapter = LoraAdapter::LoadPeft(FixtureDir() + "/adapter");
    ASSERT_TRUE(adapter.ok()) << adapter.status();
    adapter_ = std::make_unique<LoraAdapter>(std::move(*adapter));
    dir_ = testing::TempDir("export");
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  torch::Tensor Ids(int c) {
    return torch::tensor(reference_["cases"][c]["ids"].get<std::vector<int64_t>>(), torch::kInt64)
        .unsqueeze(0);
  }
  const model::LlamaConfig& base_config() const { return model_->config(); }

  nlohmann::json reference_;
  std::unique_ptr<model::LlamaModel> model_;
  std::unique_ptr<LoraAdapter> adapter_;
  std::string dir_;
};

TEST_F(ExportTest, GgufMetadataAndTensorNamesAreLlamaCpps) {
  const std::string path = dir_ + "/adapter.gguf";
  ASSERT_TRUE(ExportGguf(*adapter_, base_config(), path).ok());
  auto f = ReadGguf(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->version, 3u);
  EXPECT_EQ(f->alignment, 32u);
  std::vector<std::string> keys;
  for (const auto& kv : f->metadata) keys.push_back(kv.first);
  EXPECT_EQ(keys, (std::vector<std::string>{"general.architecture", "general.type", "adapter.type",
                                            "general.name", "adapter.lora.alpha",
                                            "general.quantization_version"}));
  EXPECT_EQ(f->Find("general.architecture")->s, "llama");
  EXPECT_EQ(f->Find("general.type")->s, "adapter");
  EXPECT_EQ(f->Find("adapter.type")->s, "lora");
  const GgufValue* alpha = f->Find("adapter.lora.alpha");
  EXPECT_EQ(alpha->type, GgufType::kFloat32);
  EXPECT_EQ(alpha->f, reference_["config"]["alpha"].get<double>());
  EXPECT_EQ(f->Find("general.quantization_version")->type, GgufType::kUint32);
  EXPECT_EQ(f->Find("general.quantization_version")->u, 2u);

  std::vector<std::string> names;
  for (const auto& t : f->tensors) names.push_back(t.name);
  EXPECT_EQ(names,
            (std::vector<std::string>{"blk.0.attn_q.weight.lora_a", "blk.0.attn_q.weight.lora_b",
                                      "blk.0.attn_v.weight.lora_a", "blk.0.attn_v.weight.lora_b",
                                      "blk.1.attn_q.weight.lora_a", "blk.1.attn_q.weight.lora_b",
                                      "blk.1.attn_v.weight.lora_a", "blk.1.attn_v.weight.lora_b"}));
  // ne is the PyTorch shape reversed: a [r, in] -> {in, r}; b [out, r] -> {r, out}; and
  // llama.cpp's checks hold: a.ne[0] == W.ne[0] (in), b.ne[1] == W.ne[1] (out), a.ne[1] == b.ne[0].
  const int64_t r = reference_["config"]["r"].get<int64_t>();
  EXPECT_EQ(f->FindTensor("blk.1.attn_q.weight.lora_a")->ne, (std::vector<int64_t>{64, r}));
  EXPECT_EQ(f->FindTensor("blk.1.attn_q.weight.lora_b")->ne, (std::vector<int64_t>{r, 64}));
  EXPECT_EQ(f->FindTensor("blk.1.attn_v.weight.lora_b")->ne, (std::vector<int64_t>{r, 32}));
  for (const auto& t : f->tensors) EXPECT_EQ(t.type, static_cast<uint32_t>(GgmlType::kF32));
}

TEST_F(ExportTest, GgufTensorsRoundTripAndKeepTheAdaptersEffect) {
  const std::string path = dir_ + "/adapter.gguf";
  ASSERT_TRUE(ExportGguf(*adapter_, base_config(), path).ok());
  auto f = ReadGguf(path);
  ASSERT_TRUE(f.ok()) << f.status();
  for (const auto& s : adapter_->slots()) {
    const std::string base = GgufBaseTensorName(s.layer, s.proj);
    EXPECT_TRUE(BitEqual(FromGguf(*f->FindTensor(base + ".lora_a")), s.A)) << base;
    torch::Tensor b = FromGguf(*f->FindTensor(base + ".lora_b"));
    if (s.proj == model::Proj::kQ) {
      ExpectRotaryPermuted(b, s.B, base_config().num_attention_heads);
      EXPECT_FALSE(BitEqual(b, s.B)) << "q rows must be permuted";
    } else {
      EXPECT_TRUE(BitEqual(b, s.B)) << base;
    }
  }
  auto back = AdapterFromGguf(*f, base_config());
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSameAdapter(*adapter_, *back);
  EXPECT_TRUE(back->config().layers.empty());
  // The imported adapter still gives PEFT's numbers.
  ASSERT_TRUE(back->Attach(*model_).ok());
  torch::NoGradGuard no_grad;
  for (int c = 0; c < 2; ++c) {
    torch::Tensor ids = Ids(c);
    EXPECT_NEAR(model::NextTokenLoss(model_->Forward(ids), ids).item<double>(),
                reference_["cases"][c]["nll_adapter"].get<double>(), 1e-4);
  }
}

TEST_F(ExportTest, GgufHeaderBytesAndAlignment) {
  for (uint32_t align : {32u, 64u}) {
    GgufOptions opt;
    opt.alignment = align;
    const std::string path = dir_ + "/a" + std::to_string(align) + ".gguf";
    ASSERT_TRUE(ExportGguf(*adapter_, base_config(), path, opt).ok());
    auto bytes = ReadFileToString(path);
    ASSERT_TRUE(bytes.ok());
    ASSERT_GT(bytes->size(), 24u);
    EXPECT_EQ(bytes->substr(0, 4), "GGUF");
    uint32_t version;
    uint64_t n_tensors, n_kv;
    std::memcpy(&version, bytes->data() + 4, 4);
    std::memcpy(&n_tensors, bytes->data() + 8, 8);
    std::memcpy(&n_kv, bytes->data() + 16, 8);
    EXPECT_EQ(version, 3u);
    EXPECT_EQ(n_tensors, 8u);
    EXPECT_EQ(n_kv, align == 32 ? 6u : 7u);
    auto f = ReadGguf(path);
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_EQ(f->alignment, align);
    const GgufValue* a = f->Find("general.alignment");
    if (align == 32) {
      EXPECT_EQ(a, nullptr);  // default alignment: the key is not written
    } else {
      ASSERT_NE(a, nullptr);
      EXPECT_EQ(a->type, GgufType::kUint32);
      EXPECT_EQ(a->u, align);
    }
    EXPECT_EQ(f->data_offset % align, 0u);
    uint64_t expected = 0;
    for (const auto& t : f->tensors) {
      EXPECT_EQ(t.offset, expected) << t.name;
      EXPECT_EQ(t.offset % align, 0u) << t.name;
      expected += (t.data.size() + align - 1) / align * align;
    }
    // Tensors are padded to the alignment, the last one included (as gguf-py writes).
    EXPECT_EQ(bytes->size(), f->data_offset + expected);
    for (const auto& t : f->tensors) {
      const uint64_t end = f->data_offset + t.offset + t.data.size();
      for (uint64_t i = end; i < (end + align - 1) / align * align; ++i) {
        EXPECT_EQ((*bytes)[i], '\0') << "padding after " << t.name;
      }
    }
  }
}

TEST_F(ExportTest, GgufF16HoldsHalfPrecisionValues) {
  GgufOptions opt;
  opt.type = GgmlType::kF16;
  auto f = AdapterToGguf(*adapter_, base_config(), opt);
  ASSERT_TRUE(f.ok()) << f.status();
  for (const auto& t : f->tensors) EXPECT_EQ(t.type, static_cast<uint32_t>(GgmlType::kF16));
  const auto& s = adapter_->slots()[1];  // layer 0, v: no permutation
  const GgufTensor* a = f->FindTensor("blk.0.attn_v.weight.lora_a");
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(a->data.size(), static_cast<size_t>(s.A.numel()) * 2);
  torch::Tensor got = FromGguf(*a);
  EXPECT_LE((got - s.A).abs().max().item<float>(), 1e-3 * s.A.abs().max().item<float>());
  uint16_t h0;
  std::memcpy(&h0, a->data.data(), 2);
  EXPECT_EQ(h0, io::FloatToHalf(s.A.contiguous().data_ptr<float>()[0]));
  auto back = AdapterFromGguf(*f, base_config());
  ASSERT_TRUE(back.ok()) << back.status();
  const torch::Tensor& b0 = adapter_->slots()[0].B;
  EXPECT_LE((back->slots()[0].B - b0).abs().max().item<float>(),
            1e-3 * b0.abs().max().item<float>());
}

TEST(ExportGgufTinyTest, AllProjectionsGqaRsloraAndSomeLayers) {
  const model::LlamaConfig base = testing::TinyConfig();  // 4 heads, 2 KV heads, head_dim 4
  LoraConfig cfg;
  cfg.rank = 3;
  cfg.alpha = 6;
  cfg.use_rslora = true;
  cfg.layers = {1};
  cfg.targets = {model::Proj::kQ,    model::Proj::kK,  model::Proj::kV,   model::Proj::kO,
                 model::Proj::kGate, model::Proj::kUp, model::Proj::kDown};
  LoraAdapter adapter = testing::RandomAdapter(base, cfg, 11);
  auto f = AdapterToGguf(adapter, base);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ(f->tensors.size(), 14u);
  const char* kNames[] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                          "ffn_gate", "ffn_up", "ffn_down"};
  for (int p = 0; p < 7; ++p) {
    EXPECT_EQ(f->tensors[2 * p].name, std::string("blk.1.") + kNames[p] + ".weight.lora_a");
    EXPECT_EQ(f->tensors[2 * p + 1].name, std::string("blk.1.") + kNames[p] + ".weight.lora_b");
  }
  // llama.cpp scales by alpha / r: rsLoRA's alpha / sqrt(r) is folded into alpha.
  const double alpha = f->Find("adapter.lora.alpha")->f;
  EXPECT_NEAR(alpha / cfg.rank, adapter.scaling(), 1e-6);
  EXPECT_NEAR(alpha, 6 * std::sqrt(3.0), 1e-5);
  // k is permuted over the 2 KV heads, q over the 4 attention heads.
  ExpectRotaryPermuted(FromGguf(*f->FindTensor("blk.1.attn_k.weight.lora_b")), adapter.slots()[1].B,
                       base.num_key_value_heads);
  ExpectRotaryPermuted(FromGguf(*f->FindTensor("blk.1.attn_q.weight.lora_b")), adapter.slots()[0].B,
                       base.num_attention_heads);
  EXPECT_TRUE(
      BitEqual(FromGguf(*f->FindTensor("blk.1.ffn_down.weight.lora_b")), adapter.slots()[6].B));
  auto back = AdapterFromGguf(*f, base);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->config().layers, std::vector<int>{1});
  EXPECT_FALSE(back->config().use_rslora);
  for (size_t i = 0; i < adapter.slots().size(); ++i) {
    EXPECT_TRUE(BitEqual(back->slots()[i].A, adapter.slots()[i].A)) << i;
    EXPECT_TRUE(BitEqual(back->slots()[i].B, adapter.slots()[i].B)) << i;
  }
  EXPECT_NEAR(back->scaling(), adapter.scaling(), 1e-6);
}

TEST_F(ExportTest, GgufRefusesAnAdapterForAnotherBase) {
  model::LlamaConfig other = base_config();
  other.hidden_size = 32;
  other.head_dim = 8;
  const std::string path = dir_ + "/wrong.gguf";
  absl::Status st = ExportGguf(*adapter_, other, path);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
  EXPECT_NE(st.message().find("model.layers.0.self_attn.q_proj.lora_A.weight"), std::string::npos)
      << st;
  EXPECT_NE(st.message().find("wrong base model"), std::string::npos) << st;
  EXPECT_FALSE(fs::exists(path));
  other = base_config();
  other.num_hidden_layers = 3;  // "all layers" of a 2-layer adapter
  EXPECT_EQ(ExportGguf(*adapter_, other, path).code(), absl::StatusCode::kInvalidArgument);
  // And the importer refuses a file that is not a LoRA adapter.
  auto f = AdapterToGguf(*adapter_, base_config());
  ASSERT_TRUE(f.ok());
  f->metadata[1].second.s = "model";
  auto st2 = AdapterFromGguf(*f, base_config()).status();
  EXPECT_NE(st2.message().find("general.type"), std::string::npos) << st2;
}

TEST_F(ExportTest, MergedCheckpointEqualsBasePlusAdapter) {
  const std::string out = dir_ + "/merged";
  ASSERT_TRUE(ExportMergedHf(FixtureDir() + "/base", *adapter_, out).ok());
  for (const char* name : {"config.json", "model.safetensors", "tokenizer.model"}) {
    EXPECT_TRUE(fs::exists(out + "/" + name)) << name;
  }
  EXPECT_EQ(*ReadFileToString(out + "/tokenizer.model"),
            *ReadFileToString(FixtureDir() + "/base/tokenizer.model"));
  auto merged = model::LoadLlamaModel(out);
  ASSERT_TRUE(merged.ok()) << merged.status();
  // Untouched tensors are copied exactly; adapted ones differ.
  EXPECT_TRUE(BitEqual((*merged)->embed_tokens, model_->embed_tokens));
  EXPECT_TRUE(BitEqual((*merged)->layers[1].Get(model::Proj::kK).weight,
                       model_->layers[1].Get(model::Proj::kK).weight));
  EXPECT_FALSE(BitEqual((*merged)->layers[1].Get(model::Proj::kQ).weight,
                        model_->layers[1].Get(model::Proj::kQ).weight));
  ASSERT_TRUE(adapter_->Attach(*model_).ok());
  torch::NoGradGuard no_grad;
  for (int c = 0; c < 2; ++c) {
    torch::Tensor ids = Ids(c);
    torch::Tensor want = model_->Forward(ids), got = (*merged)->Forward(ids);
    EXPECT_LE((got - want).abs().max().item<float>(), 1e-4) << "case " << c;
    const double nll = model::NextTokenLoss(got, ids).item<double>();
    std::printf("merged case %d: max |logit diff| %.3g, NLL %.6f\n", c,
                (got - want).abs().max().item<float>(), nll);
    EXPECT_NEAR(nll, reference_["cases"][c]["nll_adapter"].get<double>(), 1e-4) << "case " << c;
    if (c == 0) {
      EXPECT_NEAR(nll, reference_["nll_merged_case0"].get<double>(), 1e-4);
    }
  }
  auto runtime = device::LoadRuntime(out);
  ASSERT_TRUE(runtime.ok()) << runtime.status();
  EXPECT_NE(runtime->tokenizer, nullptr);
}

TEST_F(ExportTest, MergedRefusesMismatchedAdapterAndWritesNothing) {
  LoraConfig cfg;
  cfg.targets = {model::Proj::kQ, model::Proj::kV};
  LoraAdapter wrong = testing::RandomAdapter(testing::TinyConfig(), cfg, 5);
  const std::string out = dir_ + "/merged_wrong";
  absl::Status st = ExportMergedHf(FixtureDir() + "/base", wrong, out);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
  EXPECT_NE(st.message().find("model.layers.0.self_attn.q_proj.lora_A.weight"), std::string::npos)
      << st;
  EXPECT_NE(st.message().find("model.layers.0.self_attn.q_proj.weight"), std::string::npos) << st;
  EXPECT_FALSE(fs::exists(out));
  // Writing over the base itself is refused before anything is loaded.
  EXPECT_EQ(ExportMergedHf(FixtureDir() + "/base", *adapter_, FixtureDir() + "/base").code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace fedlora::adapters
