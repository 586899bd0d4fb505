#include "model_testutil.h"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>

namespace fedlora::model::testing {

nlohmann::json TinyConfigJson() {
  return {{"model_type", "llama"},
          {"architectures", {"LlamaForCausalLM"}},
          {"vocab_size", 320},
          {"hidden_size", 64},
          {"intermediate_size", 176},
          {"num_hidden_layers", 2},
          {"num_attention_heads", 4},
          {"num_key_value_heads", 2},
          {"max_position_embeddings", 128},
          {"rms_norm_eps", 1e-6},
          {"hidden_act", "silu"},
          {"bos_token_id", 1},
          {"eos_token_id", 2}};
}

LlamaConfig TinyConfig(bool tied) {
  LlamaConfig c;
  c.vocab_size = 50;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.head_dim = 8;
  c.max_position_embeddings = 32;
  c.tie_word_embeddings = tied;
  return c;
}

std::string FreshTempDir(const std::string& tag) {
  static std::atomic<int> counter{0};
  std::filesystem::path p =
      std::filesystem::temp_directory_path() /
      ("fedlora_model_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

void WriteConfigJson(const std::string& dir, const nlohmann::json& config) {
  std::ofstream out(std::filesystem::path(dir) / "config.json", std::ios::trunc);
  out << config.dump(2) << "\n";
}

}  // namespace fedlora::model::testing
