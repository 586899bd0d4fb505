#include "fedlora/model/llama.h"

#include <torch/types.h>
#include <torch/utils.h>
#include <torch/nn/functional/loss.h>

#include <cmath>

#include "fedlora/model/frozen_weight.h"
#include "fedlora/model/fused_ops.h"

namespace fedlora::model {
namespace {

constexpr const char* kProjNames[kNumProj] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                              "gate_proj", "up_proj", "down_proj"};

torch::Tensor RmsNorm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  if (FusedKernelsEnabled() && x.scalar_type() == torch::kFloat &&
      weight.scalar_type() == torch::kFloat) {
    return FusedRmsNorm(x, weight, eps);
  }
  torch::Tensor var = x.pow(2).mean(-1, /*keepdim=*/true);
  return weight * (x * torch::rsqrt(var + eps));
}

torch::Tensor RotateHalf(const torch::Tensor& x) {
  int64_t half = x.size(-1) / 2;
  torch::Tensor x1 = x.narrow(-1, 0, half);
  torch::Tensor x2 = x.narrow(-1, half, half);
  return torch::cat({-x2, x1}, -1);
}

// [N, H, T, D] -> [N, H * rep, T, D]
torch::Tensor RepeatKv(const torch::Tensor& x, int64_t rep) {
  if (rep == 1) return x;
  auto s = x.sizes();
  return x.unsqueeze(2)
      .expand({s[0], s[1], rep, s[2], s[3]})
      .reshape({s[0], s[1] * rep, s[2], s[3]});
}

}  // namespace

const char* ProjName(Proj p) { return kProjNames[static_cast<int>(p)]; }
const char* ProjModule(Proj p) { return static_cast<int>(p) < 4 ? "self_attn" : "mlp"; }
bool ParseProj(const std::string& name, Proj* out) {
  for (int i = 0; i < kNumProj; ++i) {
    if (name == kProjNames[i]) {
      *out = static_cast<Proj>(i);
      return true;
    }
  }
  return false;
}

LlamaModel::LlamaModel(LlamaConfig config) : config_(std::move(config)) {
  layers.resize(config_.num_hidden_layers);
  const int64_t hd = config_.head_dim;
  inv_freq_ = 1.0 / torch::pow(config_.rope_theta,
                               torch::arange(0, hd, 2, torch::kInt64).to(torch::kFloat) / hd);
  // cos/sin for every position, computed as Hugging Face does (float32 position x inv_freq).
  torch::Tensor pos =
      torch::arange(0, config_.max_position_embeddings, torch::kInt64).to(torch::kFloat);
  torch::Tensor freqs = pos.unsqueeze(-1) * inv_freq_;
  torch::Tensor emb = torch::cat({freqs, freqs}, -1);  // [max_pos, hd]
  cos_table_ = emb.cos();
  sin_table_ = emb.sin();
}

LlamaModel LlamaModel::RandomInit(const LlamaConfig& c, uint64_t seed, double std) {
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(seed);
  LlamaModel m(c);
  auto normal = [&](std::initializer_list<int64_t> shape) {
    return at::normal(0.0, std, shape, gen, torch::kFloat);
  };
  const int64_t d = c.hidden_size, hd = c.head_dim;
  m.embed_tokens = normal({c.vocab_size, d});
  for (auto& layer : m.layers) {
    layer.input_layernorm = torch::ones({d});
    layer.post_attention_layernorm = torch::ones({d});
    layer.Get(Proj::kQ).weight = normal({c.num_attention_heads * hd, d});
    layer.Get(Proj::kK).weight = normal({c.num_key_value_heads * hd, d});
    layer.Get(Proj::kV).weight = normal({c.num_key_value_heads * hd, d});
    layer.Get(Proj::kO).weight = normal({d, c.num_attention_heads * hd});
    layer.Get(Proj::kGate).weight = normal({c.intermediate_size, d});
    layer.Get(Proj::kUp).weight = normal({c.intermediate_size, d});
    layer.Get(Proj::kDown).weight = normal({d, c.intermediate_size});
  }
  m.norm = torch::ones({d});
  if (!c.tie_word_embeddings) m.lm_head = normal({c.vocab_size, d});
  return m;
}

torch::Tensor LlamaModel::Attention(const DecoderLayer& layer, int index, const torch::Tensor& x,
                                    const torch::Tensor& cos, const torch::Tensor& sin,
                                    const torch::Tensor& mask,
                                    const ForwardOptions& options) const {
  const int64_t n = x.size(0), t = x.size(1), hd = config_.head_dim;
  const int64_t heads = config_.num_attention_heads, kv = config_.num_key_value_heads;
  torch::Tensor q = layer.Get(Proj::kQ).Forward(x, options.training).view({n, t, heads, hd});
  torch::Tensor k = layer.Get(Proj::kK).Forward(x, options.training).view({n, t, kv, hd});
  torch::Tensor v = layer.Get(Proj::kV).Forward(x, options.training).view({n, t, kv, hd});
  const bool fused = FusedKernelsEnabled();
  if (fused && cos.size(0) == 1 && q.scalar_type() == torch::kFloat &&
      options.cache == nullptr && FusedAttentionAvailable()) {
    // The whole block on [N, T, H, D]: RoPE and attention fused, no transposes.
    const torch::Tensor c = cos.view({t, hd}), s = sin.view({t, hd});
    torch::Tensor out = FusedAttention(FusedRope(q, c, s), FusedRope(k, c, s), v, mask,
                                       1.0 / std::sqrt(static_cast<double>(hd)));
    return layer.Get(Proj::kO).Forward(out, options.training);
  }
  v = v.transpose(1, 2);
  if (fused && cos.size(0) == 1 && q.scalar_type() == torch::kFloat) {
    // Positions shared by the whole batch: the fused kernel on [N, T, H, D].
    const torch::Tensor c = cos.view({t, hd}), s = sin.view({t, hd});
    q = FusedRope(q, c, s).transpose(1, 2);
    k = FusedRope(k, c, s).transpose(1, 2);
  } else {
    q = q.transpose(1, 2);
    k = k.transpose(1, 2);
    q = q * cos + RotateHalf(q) * sin;
    k = k * cos + RotateHalf(k) * sin;
  }
  if (options.cache != nullptr) {
    KvCache& cache = *options.cache;
    if (static_cast<int>(cache.k.size()) <= index) {
      cache.k.resize(index + 1);
      cache.v.resize(index + 1);
    }
    if (cache.k[index].defined()) {
      k = torch::cat({cache.k[index], k}, 2);
      v = torch::cat({cache.v[index], v}, 2);
    }
    cache.k[index] = k;
    cache.v[index] = v;
  }
  const int64_t rep = heads / kv;
  const int64_t total = k.size(2);
  // scores = mask + scale * q k^T in one GEMM (the mask is the GEMM's C input).
  torch::Tensor q3 = q.reshape({n * heads, t, hd});
  torch::Tensor k3 = RepeatKv(k, rep).reshape({n * heads, total, hd});
  torch::Tensor v3 = RepeatKv(v, rep).reshape({n * heads, total, hd});
  torch::Tensor mask3 = mask.size(0) == 1
                            ? mask.reshape({1, t, total}).expand({n * heads, t, total})
                            : mask.expand({n, heads, t, total}).reshape({n * heads, t, total});
  torch::Tensor scores = at::baddbmm(mask3, q3, k3.transpose(1, 2), /*beta=*/1.0,
                                     /*alpha=*/1.0 / std::sqrt(static_cast<double>(hd)));
  torch::Tensor probs = torch::softmax(scores, -1);
  torch::Tensor out = at::bmm(probs, v3).view({n, heads, t, hd});
  out = out.transpose(1, 2).reshape({n, t, heads * hd});
  return layer.Get(Proj::kO).Forward(out, options.training);
}

torch::Tensor LlamaModel::Hidden(const torch::Tensor& input_ids,
                                 const ForwardOptions& options) const {
  TORCH_CHECK(input_ids.dim() == 2, "input_ids must be [N, T]");
  const int64_t n = input_ids.size(0), t = input_ids.size(1);
  const int64_t past = options.cache != nullptr ? options.cache->length() : 0;
  const int64_t total = past + t;

  // Positions: from the padding mask when given (so left padding works), else past..past+t.
  torch::Tensor positions;
  torch::Tensor key_mask;
  if (options.attention_mask.defined()) {
    TORCH_CHECK(options.attention_mask.size(0) == n && options.attention_mask.size(1) == total,
                "attention_mask must be [N, past + T]");
    torch::Tensor am = options.attention_mask.to(torch::kInt64);
    if (am.min().item<int64_t>() == 1) {
      positions = torch::arange(past, total, torch::kInt64).unsqueeze(0).expand({n, t});
    } else {
      positions = (am.cumsum(1) - 1).clamp_min(0).narrow(1, past, t);
      key_mask = am;
    }
  } else {
    positions = torch::arange(past, total, torch::kInt64).unsqueeze(0).expand({n, t});
  }
  torch::Tensor cos, sin;  // [N or 1, 1, T, hd]
  if (total <= config_.max_position_embeddings && !key_mask.defined()) {
    cos = cos_table_.narrow(0, past, t).unsqueeze(0).unsqueeze(0);
    sin = sin_table_.narrow(0, past, t).unsqueeze(0).unsqueeze(0);
  } else {
    torch::Tensor freqs = positions.to(torch::kFloat).unsqueeze(-1) * inv_freq_;  // [N, T, hd/2]
    torch::Tensor emb = torch::cat({freqs, freqs}, -1).unsqueeze(1);              // [N, 1, T, hd]
    cos = emb.cos();
    sin = emb.sin();
  }

  // Additive mask [N or 1, 1, T, total]: causal plus key padding.
  const float neg = -std::numeric_limits<float>::infinity();
  torch::Tensor q_pos = torch::arange(past, total, torch::kInt64).unsqueeze(1);
  torch::Tensor k_pos = torch::arange(0, total, torch::kInt64).unsqueeze(0);
  torch::Tensor allowed = (k_pos <= q_pos).unsqueeze(0).unsqueeze(0);  // [1, 1, T, total]
  if (key_mask.defined()) {
    allowed = allowed.logical_and(key_mask.to(torch::kBool).view({n, 1, 1, total}));
    // A fully padded query row would softmax to NaN: let it see itself.
    torch::Tensor self = (k_pos == q_pos).unsqueeze(0).unsqueeze(0);
    torch::Tensor any = allowed.any(-1, /*keepdim=*/true);
    allowed = allowed.logical_or(self.logical_and(any.logical_not()));
  }
  torch::Tensor mask =
      torch::zeros(allowed.sizes(), torch::kFloat).masked_fill(allowed.logical_not(), neg);

  torch::Tensor x = embed_tokens.index_select(0, input_ids.reshape({-1})).view({n, t, -1});
  const double eps = config_.rms_norm_eps;
  for (size_t i = 0; i < layers.size(); ++i) {
    const DecoderLayer& layer = layers[i];
    x = x + Attention(layer, static_cast<int>(i), RmsNorm(x, layer.input_layernorm, eps), cos, sin,
                      mask, options);
    torch::Tensor h = RmsNorm(x, layer.post_attention_layernorm, eps);
    torch::Tensor gate = layer.Get(Proj::kGate).Forward(h, options.training);
    torch::Tensor up = layer.Get(Proj::kUp).Forward(h, options.training);
    torch::Tensor gated = FusedKernelsEnabled() && gate.scalar_type() == torch::kFloat
                              ? FusedSwiGlu(gate, up)
                              : torch::silu(gate) * up;
    x = x + layer.Get(Proj::kDown).Forward(gated, options.training);
  }
  return RmsNorm(x, norm, eps);
}

torch::Tensor LlamaModel::Logits(const torch::Tensor& hidden) const {
  const torch::Tensor w = HeadWeight();
  if (!w.requires_grad() && w.scalar_type() == torch::kFloat &&
      hidden.scalar_type() == torch::kFloat) {
    return FrozenDenseLinear(hidden, w);
  }
  return at::linear(hidden, w);
}

torch::Tensor LlamaModel::Forward(const torch::Tensor& input_ids,
                                  const ForwardOptions& options) const {
  torch::Tensor h = Hidden(input_ids, options);
  if (options.last_only) h = h.narrow(1, h.size(1) - 1, 1);
  return Logits(h);
}

std::vector<std::pair<std::string, const torch::Tensor*>> LlamaModel::NamedParameters() const {
  std::vector<std::pair<std::string, const torch::Tensor*>> out;
  out.emplace_back("model.embed_tokens.weight", &embed_tokens);
  for (size_t i = 0; i < layers.size(); ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    for (int j = 0; j < kNumProj; ++j) {
      Proj proj = static_cast<Proj>(j);
      out.emplace_back(p + ProjModule(proj) + "." + ProjName(proj) + ".weight",
                       &layers[i].proj[j].weight);
    }
    out.emplace_back(p + "input_layernorm.weight", &layers[i].input_layernorm);
    out.emplace_back(p + "post_attention_layernorm.weight", &layers[i].post_attention_layernorm);
  }
  out.emplace_back("model.norm.weight", &norm);
  if (!config_.tie_word_embeddings) out.emplace_back("lm_head.weight", &lm_head);
  return out;
}

std::vector<std::pair<std::string, torch::Tensor*>> LlamaModel::NamedParameters() {
  std::vector<std::pair<std::string, torch::Tensor*>> out;
  for (auto& [name, t] : static_cast<const LlamaModel*>(this)->NamedParameters()) {
    out.emplace_back(name, const_cast<torch::Tensor*>(t));
  }
  return out;
}

void LlamaModel::SetBaseTrainable(bool trainable) {
  for (auto& [name, t] : NamedParameters()) {
    if (t->defined()) t->set_requires_grad(trainable);
  }
}

torch::Tensor NextTokenLoss(const torch::Tensor& logits, const torch::Tensor& ids,
                            const torch::Tensor& mask) {
  const int64_t t = ids.size(1);
  torch::Tensor pred = logits.narrow(1, 0, t - 1).reshape({-1, logits.size(-1)});
  torch::Tensor target = ids.narrow(1, 1, t - 1).reshape({-1});
  if (mask.defined()) {
    torch::Tensor m = mask.narrow(1, 1, t - 1).reshape({-1}).to(torch::kBool);
    target = target.masked_fill(m.logical_not(), -100);
  }
  return torch::nn::functional::cross_entropy(
      pred, target, torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100));
}

}  // namespace fedlora::model
