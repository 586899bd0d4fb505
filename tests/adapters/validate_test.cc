// Error paths: adapters that do not fit their base, PEFT configs we refuse, malformed files.
#include <torch/types.h>

#include <filesystem>
#include <fstream>

#include "adapters/lora_testutil.h"
#include "fedlora/adapters/lora_adapter.h"
#include "fedlora/io/safetensors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora::adapters {
namespace {

using model::Proj;
using ::testing::AllOf;
using ::testing::HasSubstr;
using testing::TinyConfig;
using testing::TinyModel;

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

TEST(ValidateTest, WrongShapeNamesTensorAndBothShapes) {
  model::LlamaConfig wide = TinyConfig();
  wide.hidden_size = 32;
  wide.head_dim = 8;
  LoraConfig c;
  c.rank = 2;
  auto a = LoraAdapter::Create(wide, c, 1);
  ASSERT_TRUE(a.ok());
  model::LlamaModel m = TinyModel();
  absl::Status s = a->Validate(m);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(s), AllOf(HasSubstr("base_model.model.model.layers.0.self_attn.q_proj.lora_A"),
                            HasSubstr("[2, 32]"), HasSubstr("[2, 16]"),
                            HasSubstr("(hint: wrong base model?)")));
  // Attach fails the same way and leaves the model untouched.
  EXPECT_EQ(a->Attach(m).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(m.layers[0].Get(Proj::kQ).loras.empty());
  EXPECT_EQ(a->Merge(m).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ValidateTest, WrongOutputShapeNamesB) {
  model::LlamaConfig more_kv = TinyConfig();
  more_kv.num_key_value_heads = 4;
  LoraConfig c;
  c.targets = {Proj::kV};
  auto a = LoraAdapter::Create(more_kv, c, 1);
  ASSERT_TRUE(a.ok());
  absl::Status s = a->Validate(TinyModel());
  EXPECT_THAT(Msg(s), AllOf(HasSubstr("v_proj.lora_B.weight"), HasSubstr("[16, 8]"),
                            HasSubstr("[8, 8]"), HasSubstr("wrong base model")));
}

TEST(ValidateTest, LayerOutOfRange) {
  model::LlamaConfig deep = TinyConfig();
  deep.num_hidden_layers = 4;
  LoraConfig c;
  c.layers = {3};
  auto a = LoraAdapter::Create(deep, c, 1);
  ASSERT_TRUE(a.ok());
  absl::Status s = a->Validate(TinyModel());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(s), AllOf(HasSubstr("layers.3."), HasSubstr("layer 3"), HasSubstr("has 2 layers"),
                            HasSubstr("wrong base model")));
  // "All layers" of a 4-layer model do not fit a 2-layer model either.
  c.layers = {};
  auto all = LoraAdapter::Create(deep, c, 1);
  EXPECT_THAT(Msg(all->Validate(TinyModel())), HasSubstr("layer"));
  // ... nor do all layers of a 1-layer model (the 2-layer base would be half adapted).
  model::LlamaConfig shallow = TinyConfig();
  shallow.num_hidden_layers = 1;
  auto half = LoraAdapter::Create(shallow, c, 1);
  EXPECT_THAT(Msg(half->Validate(TinyModel())), AllOf(HasSubstr("1-layer"), HasSubstr("2 layers")));
}

TEST(ValidateTest, TargetMissingFromModel) {
  model::LlamaModel m = TinyModel();
  m.layers[1].Get(Proj::kGate).weight = torch::Tensor();
  LoraConfig c;
  c.targets = {Proj::kGate};
  auto a = LoraAdapter::Create(TinyConfig(), c, 1);
  absl::Status s = a->Validate(m);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(s),
              AllOf(HasSubstr("model.layers.1.mlp.gate_proj.weight"), HasSubstr("does not have")));
}

TEST(PeftConfigTest, ParsesTargetForms) {
  nlohmann::json j = {{"r", 4},
                      {"lora_alpha", 8},
                      {"target_modules", {"self_attn.v_proj", "q_proj"}},
                      {"layers_to_transform", 1}};
  auto c = LoraConfig::FromPeftJson(j, "cfg");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->targets, (std::vector<Proj>{Proj::kQ, Proj::kV}));
  EXPECT_EQ(c->layers, (std::vector<int>{1}));
  EXPECT_DOUBLE_EQ(c->Scaling(), 2.0);
  j["target_modules"] = "all-linear";
  EXPECT_EQ(LoraConfig::FromPeftJson(j, "cfg")->targets.size(), 7u);
  j["target_modules"] = ".*\\.(k|o)_proj";
  EXPECT_EQ(LoraConfig::FromPeftJson(j, "cfg")->targets, (std::vector<Proj>{Proj::kK, Proj::kO}));
  j["target_modules"] = "nothing_here";
  EXPECT_THAT(Msg(LoraConfig::FromPeftJson(j, "cfg").status()), HasSubstr("matches none"));
}

TEST(PeftConfigTest, RoundTripsThroughJson) {
  LoraConfig c;
  c.rank = 6;
  c.alpha = 12.5;
  c.use_rslora = true;
  c.dropout = 0.05;
  c.targets = {Proj::kDown, Proj::kQ};
  c.layers = {3, 1};
  nlohmann::json j = c.ToPeftJson();
  EXPECT_EQ(j["peft_type"], "LORA");
  EXPECT_EQ(j["task_type"], "CAUSAL_LM");
  EXPECT_TRUE(j["base_model_name_or_path"].is_null());
  auto back = LoraConfig::FromPeftJson(j, "x");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->rank, 6);
  EXPECT_EQ(back->alpha, 12.5);
  EXPECT_TRUE(back->use_rslora);
  EXPECT_EQ(back->dropout, 0.05);
  EXPECT_EQ(back->targets, (std::vector<Proj>{Proj::kQ, Proj::kDown}));
  EXPECT_EQ(back->layers, (std::vector<int>{1, 3}));
  EXPECT_TRUE(ConfigsCompatible(c, *back));
}

TEST(PeftConfigTest, RefusesUnsupportedOptions) {
  const nlohmann::json ok = {{"r", 4}, {"target_modules", {"q_proj"}}};
  struct Case {
    const char* key;
    nlohmann::json value;
    const char* expect;
  };
  const Case cases[] = {
      {"fan_in_fan_out", true, "fan_in_fan_out"},
      {"use_dora", true, "DoRA"},
      {"bias", "all", "bias"},
      {"lora_bias", true, "lora_bias"},
      {"rank_pattern", {{"q_proj", 8}}, "rank_pattern"},
      {"modules_to_save", {"lm_head"}, "modules_to_save"},
      {"peft_type", "PREFIX_TUNING", "peft_type"},
      {"target_modules", {"lm_head"}, "lm_head"},
      {"target_modules", {"mlp.q_proj"}, "mlp.q_proj"},
      {"r", "four", "\"r\""},
      {"r", 0, "rank"},
      {"lora_dropout", 1.5, "dropout"},
      {"layers_to_transform", "0", "layers_to_transform"},
  };
  for (const Case& k : cases) {
    nlohmann::json j = ok;
    j[k.key] = k.value;
    auto c = LoraConfig::FromPeftJson(j, "dir/adapter_config.json");
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << k.key;
    EXPECT_THAT(Msg(c.status()), AllOf(HasSubstr("dir/adapter_config.json"), HasSubstr(k.expect)))
        << k.key;
  }
  nlohmann::json j = ok;
  j.erase("r");
  EXPECT_THAT(Msg(LoraConfig::FromPeftJson(j, "f").status()), HasSubstr("\"r\""));
}

// Writes a PEFT dir with the given config and F32 tensors (zeros of the given shapes).
std::string WritePeftDir(const nlohmann::json& config,
                         const std::vector<std::pair<std::string, std::vector<int64_t>>>& tensors) {
  const std::string dir = testing::TempDir("peft");
  std::ofstream(dir + "/adapter_config.json") << config.dump();
  std::vector<std::vector<float>> data;
  data.reserve(tensors.size());  // views point into these buffers
  std::vector<io::TensorView> views;
  for (const auto& [name, shape] : tensors) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    data.emplace_back(n, 0.5f);
    views.push_back({name, io::DType::kF32, shape,
                     reinterpret_cast<const uint8_t*>(data.back().data()), sizeof(float) * n});
  }
  EXPECT_TRUE(io::WriteSafetensors(dir + "/adapter_model.safetensors", views).ok());
  return dir;
}

std::string Name(int layer, const char* proj, char which) {
  const std::string p = proj;
  const bool attn = p == "q_proj" || p == "k_proj" || p == "v_proj" || p == "o_proj";
  const std::string module = attn ? "self_attn" : "mlp";
  return "base_model.model.model.layers." + std::to_string(layer) + "." + module + "." + proj +
         ".lora_" + which + ".weight";
}

TEST(PeftFileTest, LoadsAWellFormedDirAndRefusesMalformedOnes) {
  const nlohmann::json cfg = {
      {"r", 2}, {"lora_alpha", 4}, {"target_modules", {"q_proj"}}, {"layers_to_transform", {1}}};
  const std::vector<std::pair<std::string, std::vector<int64_t>>> good = {
      {Name(1, "q_proj", 'A'), {2, 16}}, {Name(1, "q_proj", 'B'), {16, 2}}};
  {
    std::string dir = WritePeftDir(cfg, good);
    auto a = LoraAdapter::LoadPeft(dir);
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_EQ(a->slots().size(), 1u);
    EXPECT_EQ(a->slots()[0].layer, 1);
    EXPECT_TRUE(a->Validate(TinyModel()).ok());
    std::filesystem::remove_all(dir);
  }
  struct Bad {
    std::vector<std::pair<std::string, std::vector<int64_t>>> tensors;
    std::vector<std::string> expect;
  };
  const Bad bad[] = {
      {{{Name(1, "q_proj", 'A'), {3, 16}}, {Name(1, "q_proj", 'B'), {16, 2}}},
       {Name(1, "q_proj", 'A'), "[3, 16]", "r = 2", "[2, in]"}},
      {{{Name(1, "q_proj", 'A'), {2, 16}}}, {"missing tensor", Name(1, "q_proj", 'B')}},
      {{{Name(1, "q_proj", 'A'), {2, 16}},
        {Name(1, "q_proj", 'B'), {16, 2}},
        {Name(1, "v_proj", 'A'), {2, 16}}},
       {Name(1, "v_proj", 'A'), "target_modules"}},
      {{{Name(0, "q_proj", 'A'), {2, 16}}, {Name(0, "q_proj", 'B'), {16, 2}}},
       {Name(0, "q_proj", 'A'), "layers_to_transform"}},
      {{{"base_model.model.lm_head.lora_A.weight", {2, 16}}}, {"unexpected tensor", "lm_head"}},
  };
  for (const Bad& b : bad) {
    std::string dir = WritePeftDir(cfg, b.tensors);
    auto a = LoraAdapter::LoadPeft(dir);
    EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument) << a.status();
    EXPECT_THAT(Msg(a.status()), HasSubstr("adapter_model.safetensors"));
    for (const auto& e : b.expect) EXPECT_THAT(Msg(a.status()), HasSubstr(e));
    std::filesystem::remove_all(dir);
  }
  // A well-formed adapter for a different base fails Validate, naming both shapes.
  {
    std::string dir =
        WritePeftDir(cfg, {{Name(1, "q_proj", 'A'), {2, 20}}, {Name(1, "q_proj", 'B'), {16, 2}}});
    auto a = LoraAdapter::LoadPeft(dir);
    ASSERT_TRUE(a.ok()) << a.status();
    EXPECT_THAT(Msg(a->Validate(TinyModel())),
                AllOf(HasSubstr("[2, 20]"), HasSubstr("[2, 16]"), HasSubstr("wrong base model")));
    std::filesystem::remove_all(dir);
  }
  {
    const std::string empty = testing::TempDir("empty");
    EXPECT_EQ(LoraAdapter::LoadPeft(empty).status().code(), absl::StatusCode::kNotFound);
    std::ofstream(empty + "/adapter_config.json") << "{not json";
    EXPECT_THAT(Msg(LoraAdapter::LoadPeft(empty).status()), HasSubstr("not valid JSON"));
    std::ofstream(empty + "/adapter_config.json") << cfg.dump();
    EXPECT_EQ(LoraAdapter::LoadPeft(empty).status().code(), absl::StatusCode::kNotFound);
    std::filesystem::remove_all(empty);
  }
}

// A NaN in an adapter is refused at load, naming the tensor (layer and lora_A/lora_B).
TEST(PeftFileTest, NonFiniteAdapterWeightsAreRefusedNamingTheTensor) {
  LoraConfig lc;
  lc.rank = 2;
  lc.alpha = 4;
  lc.targets = {Proj::kQ};
  model::LlamaModel m = TinyModel();
  auto a = LoraAdapter::Create(m.config(), lc, 3);
  ASSERT_TRUE(a.ok()) << a.status();
  std::vector<float> flat = a->Flatten();
  flat.back() = std::nanf("");
  ASSERT_TRUE(a->Unflatten(flat.data(), flat.size()).ok());
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("fedlora_nan_adapter_" + std::to_string(getpid())))
          .string();
  ASSERT_TRUE(a->SavePeft(dir).ok());
  auto loaded = LoraAdapter::LoadPeft(dir);
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(loaded.status()), AllOf(HasSubstr("non-finite values"), HasSubstr("layers."),
                                          HasSubstr("lora_"), HasSubstr("hint:")));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace fedlora::adapters
