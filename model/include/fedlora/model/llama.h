// A Llama-family causal decoder (Hugging Face `LlamaForCausalLM`) on libtorch, CPU float32.
#ifndef FEDLORA_MODEL_LLAMA_H_
#define FEDLORA_MODEL_LLAMA_H_

#include <torch/types.h>

#include <string>
#include <utility>
#include <vector>

#include "fedlora/model/config.h"
#include "fedlora/model/linear.h"

namespace fedlora::model {

// The seven projections LoRA can target, in the order used by flat layouts.
enum class Proj { kQ = 0, kK, kV, kO, kGate, kUp, kDown };
constexpr int kNumProj = 7;
const char* ProjName(Proj p);    // "q_proj", ...
const char* ProjModule(Proj p);  // "self_attn" or "mlp"
bool ParseProj(const std::string& name, Proj* out);

struct DecoderLayer {
  torch::Tensor input_layernorm;           // [hidden]
  torch::Tensor post_attention_layernorm;  // [hidden]
  Linear proj[kNumProj];

  Linear& Get(Proj p) { return proj[static_cast<int>(p)]; }
  const Linear& Get(Proj p) const { return proj[static_cast<int>(p)]; }
};

// Keys and values of past positions, per layer: [N, kv_heads, T_past, head_dim].
struct KvCache {
  std::vector<torch::Tensor> k;
  std::vector<torch::Tensor> v;
  int64_t length() const { return k.empty() || !k[0].defined() ? 0 : k[0].size(2); }
  void Clear() {
    k.clear();
    v.clear();
  }
};

struct ForwardOptions {
  // [N, T_past + T] with 1 for real tokens and 0 for padding; undefined = all real.
  torch::Tensor attention_mask;
  KvCache* cache = nullptr;  // appended to when set
  bool training = false;     // enables LoRA dropout
  bool last_only = false;    // compute logits for the last position only
};

class LlamaModel {
 public:
  explicit LlamaModel(LlamaConfig config);

  // Random weights as Hugging Face initialises them: normal(0, std) for linears and
  // embeddings, ones for norms. Deterministic for a seed.
  static LlamaModel RandomInit(const LlamaConfig& config, uint64_t seed, double std = 0.02);

  const LlamaConfig& config() const { return config_; }

  // input_ids: [N, T] int64. Returns logits [N, T, vocab] (or [N, 1, vocab] with last_only).
  torch::Tensor Forward(const torch::Tensor& input_ids, const ForwardOptions& options = {}) const;

  // Final hidden states after the last norm: [N, T, hidden].
  torch::Tensor Hidden(const torch::Tensor& input_ids, const ForwardOptions& options = {}) const;

  // The output projection applied to hidden states.
  torch::Tensor Logits(const torch::Tensor& hidden) const;
  // The LM head's weight [vocab, hidden]: lm_head, or embed_tokens when they are tied.
  const torch::Tensor& HeadWeight() const { return lm_head.defined() ? lm_head : embed_tokens; }

  // Every base tensor under its Hugging Face name ("model.layers.0.self_attn.q_proj.weight",
  // "lm_head.weight" only when untied). Pointers stay valid while the model lives.
  std::vector<std::pair<std::string, torch::Tensor*>> NamedParameters();
  std::vector<std::pair<std::string, const torch::Tensor*>> NamedParameters() const;

  // Sets requires_grad on every base tensor (false: frozen, the default after loading).
  void SetBaseTrainable(bool trainable);

  torch::Tensor embed_tokens;  // [vocab, hidden]
  torch::Tensor norm;          // [hidden]
  torch::Tensor lm_head;       // [vocab, hidden]; undefined when tied
  std::vector<DecoderLayer> layers;

 private:
  torch::Tensor Attention(const DecoderLayer& layer, int index, const torch::Tensor& x,
                          const torch::Tensor& cos, const torch::Tensor& sin,
                          const torch::Tensor& mask, const ForwardOptions& options) const;
  LlamaConfig config_;
  torch::Tensor inv_freq_;   // [head_dim / 2]
  torch::Tensor cos_table_;  // [max_position_embeddings, head_dim]
  torch::Tensor sin_table_;
};

// Mean next-token cross-entropy (nats) of logits [N, T, V] against ids [N, T], shifted by
// one; positions whose target has mask 0 are ignored. Returns a scalar.
torch::Tensor NextTokenLoss(const torch::Tensor& logits, const torch::Tensor& ids,
                            const torch::Tensor& mask = {});

}  // namespace fedlora::model

#endif  // FEDLORA_MODEL_LLAMA_H_
