// LoRA adapter <-> GGUF (llama.cpp convert_lora_to_gguf.py layout; see export_gguf.h).
#include "fedlora/adapters/export_gguf.h"

#include <torch/types.h>

#include <cmath>
#include <cstring>
#include <map>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "fedlora/io/safetensors.h"
#include "gguf_llama.h"
#include "slots.h"

namespace fedlora::adapters {
namespace {

constexpr model::Proj kAllProj[] = {model::Proj::kQ,   model::Proj::kK,    model::Proj::kV,
                                    model::Proj::kO,   model::Proj::kGate, model::Proj::kUp,
                                    model::Proj::kDown};

using internal::PermuteHeads;
using internal::PermuteRows;
using internal::MakeTensor;

absl::Status ShapeError(int layer, model::Proj p, char which, c10::IntArrayRef got,
                        const std::vector<int64_t>& want, const model::LlamaConfig& c) {
  auto [out, in] = internal::ProjShape(c, p);
  return absl::InvalidArgumentError(absl::StrCat(
      "LoRA tensor '", internal::PeftName(layer, p, which), "' has shape ", internal::ShapeStr(got),
      " but base weight '", internal::BaseName(layer, p), "' [", out, ", ", in, "] needs ",
      internal::ShapeStr(want), " (hint: wrong base model?)"));
}

// Checks one slot against the base architecture.
absl::Status CheckSlot(const model::LlamaConfig& c, int layer, model::Proj p, int64_t rank,
                       c10::IntArrayRef a, c10::IntArrayRef b) {
  if (layer < 0 || layer >= c.num_hidden_layers) {
    return absl::InvalidArgumentError(absl::StrCat(
        "LoRA tensor '", internal::PeftName(layer, p, 'A'), "' is for layer ", layer,
        " but the base model has ", c.num_hidden_layers, " layers (hint: wrong base model?)"));
  }
  auto [out, in] = internal::ProjShape(c, p);
  if (a.vec() != std::vector<int64_t>{rank, in}) return ShapeError(layer, p, 'A', a, {rank, in}, c);
  if (b.vec() != std::vector<int64_t>{out, rank}) {
    return ShapeError(layer, p, 'B', b, {out, rank}, c);
  }
  if (PermuteHeads(c, p) > 0 && out % (2 * PermuteHeads(c, p)) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("base weight '", internal::BaseName(layer, p),
                                                   "' has ", out, " rows, not 2 x heads x ",
                                                   "(head_dim / 2): cannot apply the rotary "
                                                   "permutation llama.cpp expects"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> GetString(const GgufFile& f, const std::string& key) {
  const GgufValue* v = f.Find(key);
  if (v == nullptr || v->type != GgufType::kString) {
    return absl::InvalidArgumentError(
        absl::StrCat("GGUF adapter: key '", key, "' is missing or not a STRING"));
  }
  return v->s;
}

}  // namespace

const char* GgufProjName(model::Proj p) {
  switch (p) {
    case model::Proj::kQ:
      return "attn_q";
    case model::Proj::kK:
      return "attn_k";
    case model::Proj::kV:
      return "attn_v";
    case model::Proj::kO:
      return "attn_output";
    case model::Proj::kGate:
      return "ffn_gate";
    case model::Proj::kUp:
      return "ffn_up";
    case model::Proj::kDown:
      return "ffn_down";
  }
  return "?";
}

std::string GgufBaseTensorName(int layer, model::Proj p) {
  return absl::StrCat("blk.", layer, ".", GgufProjName(p), ".weight");
}

absl::StatusOr<GgufFile> AdapterToGguf(const LoraAdapter& adapter,
                                       const model::LlamaConfig& base_config,
                                       const GgufOptions& options) {
  if (options.type != GgmlType::kF32 && options.type != GgmlType::kF16) {
    return absl::InvalidArgumentError(absl::StrCat(
        "GGUF export: tensor type ", GgmlTypeName(options.type), " is not supported (F32 or F16)"));
  }
  if (options.name.empty()) {
    return absl::InvalidArgumentError("GGUF export: general.name must not be empty");
  }
  if (options.alignment == 0 || (options.alignment & (options.alignment - 1)) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("GGUF export: alignment ", options.alignment, " is not a power of two"));
  }
  const LoraConfig& cfg = adapter.config();
  std::set<int> layers;
  for (const auto& s : adapter.slots()) {
    if (auto st = CheckSlot(base_config, s.layer, s.proj, cfg.rank, s.A.sizes(), s.B.sizes());
        !st.ok()) {
      return st;
    }
    layers.insert(s.layer);
  }
  if (cfg.layers.empty() && !layers.empty() &&
      static_cast<int64_t>(layers.size()) != base_config.num_hidden_layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("LoRA adapter covers all layers of a ", layers.size(),
                     "-layer model but the base model has ", base_config.num_hidden_layers,
                     " layers (hint: wrong base model?)"));
  }

  GgufFile f;
  f.alignment = options.alignment;
  f.metadata.emplace_back("general.architecture", GgufValue::String("llama"));
  f.metadata.emplace_back("general.type", GgufValue::String("adapter"));
  f.metadata.emplace_back("adapter.type", GgufValue::String("lora"));
  f.metadata.emplace_back("general.name", GgufValue::String(options.name));
  if (options.alignment != kGgufDefaultAlignment) {
    f.metadata.emplace_back("general.alignment", GgufValue::Uint32(options.alignment));
  }
  // llama.cpp scales by alpha / r: fold rsLoRA's sqrt into alpha.
  const double alpha = adapter.scaling() * cfg.rank;
  f.metadata.emplace_back("adapter.lora.alpha", GgufValue::Float32(static_cast<float>(alpha)));
  f.metadata.emplace_back("general.quantization_version", GgufValue::Uint32(kGgmlQuantVersion));
  for (const auto& [k, v] : options.extra_strings) {
    if (f.Find(k) != nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("GGUF export: extra key '", k, "' repeats a key the exporter writes"));
    }
    f.metadata.emplace_back(k, GgufValue::String(v));
  }

  torch::NoGradGuard no_grad;
  for (const auto& s : adapter.slots()) {
    const std::string base = GgufBaseTensorName(s.layer, s.proj);
    torch::Tensor b = s.B.detach();
    if (const int64_t heads = PermuteHeads(base_config, s.proj); heads > 0) {
      b = PermuteRows(b, heads, /*inverse=*/false);
    }
    f.tensors.push_back(MakeTensor(base + ".lora_a", s.A.detach(), options.type));
    f.tensors.push_back(MakeTensor(base + ".lora_b", b, options.type));
  }
  return f;
}

absl::Status ExportGguf(const LoraAdapter& adapter, const model::LlamaConfig& base_config,
                        const std::string& path, const GgufOptions& options) {
  auto f = AdapterToGguf(adapter, base_config, options);
  if (!f.ok()) {
    return absl::Status(f.status().code(), absl::StrCat(path, ": ", f.status().message()));
  }
  return WriteGguf(path, *f);
}

absl::StatusOr<LoraAdapter> AdapterFromGguf(const GgufFile& file,
                                            const model::LlamaConfig& base_config) {
  auto bad = [](const std::string& m) {
    return absl::InvalidArgumentError(absl::StrCat("GGUF adapter: ", m));
  };
  for (auto [key, want] : {std::pair<const char*, const char*>{"general.type", "adapter"},
                           {"adapter.type", "lora"},
                           {"general.architecture", "llama"}}) {
    auto v = GetString(file, key);
    if (!v.ok()) return v.status();
    if (*v != want) {
      return bad(absl::StrCat(key, " is '", *v, "', expected '", want, "'"));
    }
  }
  const GgufValue* alpha = file.Find("adapter.lora.alpha");
  if (alpha == nullptr || alpha->type != GgufType::kFloat32) {
    return bad("adapter.lora.alpha is missing or not a FLOAT32");
  }
  // (layer, proj) -> {a, b}
  std::map<std::pair<int, int>, std::pair<const GgufTensor*, const GgufTensor*>> pairs;
  for (const GgufTensor& t : file.tensors) {
    std::vector<std::string> parts = absl::StrSplit(t.name, '.');
    int layer = -1;
    int proj = -1;
    if (parts.size() == 5 && parts[0] == "blk" && absl::SimpleAtoi(parts[1], &layer) &&
        layer >= 0 && parts[3] == "weight" && (parts[4] == "lora_a" || parts[4] == "lora_b")) {
      for (model::Proj p : kAllProj) {
        if (parts[2] == GgufProjName(p)) proj = static_cast<int>(p);
      }
    }
    if (proj < 0) {
      return bad(absl::StrCat("tensor '", t.name, "' is not blk.N.<attn_q|attn_k|attn_v|",
                              "attn_output|ffn_gate|ffn_up|ffn_down>.weight.lora_<a|b> ",
                              "(hint: only Llama projection adapters are supported)"));
    }
    if (t.ne.size() != 2) {
      return bad(absl::StrCat("tensor '", t.name, "' has ", t.ne.size(), " dims, expected 2"));
    }
    auto& slot = pairs[{layer, proj}];
    (parts[4] == "lora_a" ? slot.first : slot.second) = &t;
  }
  if (pairs.empty()) return bad("the file holds no LoRA tensors");
  LoraConfig cfg;
  cfg.rank = -1;
  std::set<int> layers;
  std::set<int> projs;
  for (const auto& [key, ab] : pairs) {
    const std::string base = GgufBaseTensorName(key.first, static_cast<model::Proj>(key.second));
    if (ab.first == nullptr || ab.second == nullptr) {
      return bad(absl::StrCat("tensor pair for '", base, "' is missing its ",
                              ab.first == nullptr ? "lora_a" : "lora_b"));
    }
    const int64_t r = ab.first->ne[1];
    if (cfg.rank >= 0 && r != cfg.rank) {
      return bad(absl::StrCat("'", base, ".lora_a' has rank ", r, " but other tensors have ",
                              cfg.rank, " (hint: per-module ranks are not supported)"));
    }
    cfg.rank = static_cast<int>(r);
    layers.insert(key.first);
    projs.insert(key.second);
  }
  if (pairs.size() != layers.size() * projs.size()) {
    return bad(absl::StrCat("the adapter has ", pairs.size(), " (layer, projection) pairs, not ",
                            "the full grid of ", layers.size(), " layers x ", projs.size(),
                            " projections (hint: every projection must be adapted on every "
                            "adapted layer)"));
  }
  cfg.alpha = alpha->f;
  cfg.targets.clear();
  for (int p : projs) cfg.targets.push_back(static_cast<model::Proj>(p));
  if (static_cast<int64_t>(layers.size()) != base_config.num_hidden_layers ||
      *layers.rbegin() != base_config.num_hidden_layers - 1) {
    cfg.layers.assign(layers.begin(), layers.end());
  }
  if (auto st = cfg.Check(); !st.ok()) return bad(std::string(st.message()));

  std::vector<LoraAdapter::Slot> slots;
  for (const auto& [key, ab] : pairs) {  // map order = layer, then Proj order: the flat order
    const auto p = static_cast<model::Proj>(key.second);
    auto a = ab.first->ToFloat();
    if (!a.ok()) return a.status();
    auto b = ab.second->ToFloat();
    if (!b.ok()) return b.status();
    auto as = ab.first->TorchShape(), bs = ab.second->TorchShape();
    if (auto st = CheckSlot(base_config, key.first, p, cfg.rank, as, bs); !st.ok()) return st;
    LoraAdapter::Slot s;
    s.layer = key.first;
    s.proj = p;
    s.A = torch::from_blob(a->data(), as, torch::kFloat).clone();
    s.B = torch::from_blob(b->data(), bs, torch::kFloat).clone();
    if (const int64_t heads = PermuteHeads(base_config, p); heads > 0) {
      s.B = PermuteRows(s.B, heads, /*inverse=*/true);
    }
    slots.push_back(std::move(s));
  }
  return MakeAdapterFromSlots(std::move(cfg), std::move(slots));
}

}  // namespace fedlora::adapters
