// What `fedlora pretrain` / SaveLlamaModel writes has the layout Hugging Face wrote for the
// fixture: the same tensor names, dtypes and shapes, and a config.json with every key
// transformers needs for LlamaForCausalLM. (transformers itself is not in Debian 12, so this
// compares against files it produced.)
#include <filesystem>

#include "fedlora/common/file_util.h"
#include "fedlora/io/safetensors.h"
#include "fedlora/model/checkpoint.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace fedlora::model {
namespace {

TEST(HfLayoutTest, SavedModelMatchesTransformersLayout) {
  const std::string fixture = std::string(FEDLORA_SHARED_DIR) + "/fixtures/hf-tiny-llama/base";
  if (!std::filesystem::exists(fixture + "/config.json")) GTEST_SKIP() << "shared fixtures absent";
  auto config = LoadLlamaConfig(fixture + "/config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  auto dir =
      std::filesystem::temp_directory_path() / ("fedlora_hf_layout_" + std::to_string(::getpid()));
  ASSERT_TRUE(SaveLlamaModel(LlamaModel::RandomInit(*config, 1), dir.string()).ok());

  auto ours = io::SafetensorsFile::Open((dir / "model.safetensors").string());
  auto theirs = io::SafetensorsFile::Open(fixture + "/model.safetensors");
  ASSERT_TRUE(ours.ok() && theirs.ok());
  ASSERT_EQ((*ours)->tensors().size(), (*theirs)->tensors().size());
  for (const auto& t : (*theirs)->tensors()) {
    const io::TensorView* o = (*ours)->Find(t.name);
    ASSERT_NE(o, nullptr) << "missing " << t.name;
    EXPECT_EQ(o->shape, t.shape) << t.name;
    EXPECT_EQ(o->dtype, t.dtype) << t.name;
  }
  auto ours_cfg = nlohmann::json::parse(*ReadFileToString((dir / "config.json").string()));
  auto hf_cfg = nlohmann::json::parse(*ReadFileToString(fixture + "/config.json"));
  for (const char* key :
       {"architectures", "model_type", "vocab_size", "hidden_size", "intermediate_size",
        "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
        "max_position_embeddings", "rms_norm_eps", "tie_word_embeddings", "bos_token_id",
        "eos_token_id", "hidden_act", "attention_bias", "mlp_bias"}) {
    ASSERT_TRUE(ours_cfg.contains(key)) << key;
    EXPECT_EQ(ours_cfg[key], hf_cfg[key]) << key;
  }
  // rope_theta is where older and newer transformers both read it.
  EXPECT_EQ(ours_cfg["rope_theta"], hf_cfg["rope_parameters"]["rope_theta"]);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace fedlora::model
