// A whole Llama model as a llama.cpp GGUF (see export_gguf_model.h).
#include "fedlora/adapters/export_gguf_model.h"

#include <torch/types.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "fedlora/adapters/export_gguf.h"
#include "fedlora/io/safetensors.h"
#include "gguf_llama.h"

namespace fedlora::adapters {
namespace {

using internal::MakeTensor;

constexpr model::Proj kProjOrder[] = {model::Proj::kQ,    model::Proj::kK,  model::Proj::kV,
                                      model::Proj::kO,    model::Proj::kGate, model::Proj::kUp,
                                      model::Proj::kDown};

// llama_ftype values for general.file_type.
uint32_t FileType(GgmlType t) {
  if (t == GgmlType::kF16) return 1;   // LLAMA_FTYPE_MOSTLY_F16
  if (t == GgmlType::kQ8_0) return 7;  // LLAMA_FTYPE_MOSTLY_Q8_0
  return 0;                            // LLAMA_FTYPE_ALL_F32
}

GgufValue Scalar(GgufType type, uint64_t u, int64_t i) {
  GgufValue v;
  v.type = type;
  v.u = u;
  v.i = i;
  return v;
}
GgufValue Int32(int64_t i) { return Scalar(GgufType::kInt32, 0, i); }
GgufValue Bool(bool b) { return Scalar(GgufType::kBool, b ? 1 : 0, 0); }
GgufValue Array(GgufType element, std::vector<GgufValue> items) {
  GgufValue v;
  v.type = GgufType::kArray;
  v.array_type = element;
  v.array = std::move(items);
  return v;
}

// The tokenizer.ggml.* metadata.
absl::Status AddTokenizer(const model::LlamaConfig& c, const SentencePieceVocab& vocab,
                          GgufFile* f) {
  const auto n_pieces = static_cast<int64_t>(vocab.pieces.size());
  if (n_pieces > c.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "GGUF export: the tokenizer has ", n_pieces, " pieces but the model's vocab_size is ",
        c.vocab_size, " (hint: wrong tokenizer.model for this base?)"));
  }
  if (vocab.model_type != 1 && vocab.model_type != 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "GGUF export: sentencepiece model_type ", vocab.model_type,
        " is not supported (llama.cpp's \"llama\" tokenizer reads BPE (2) and unigram (1))"));
  }
  std::vector<GgufValue> tokens, scores, types;
  for (int64_t id = 0; id < c.vocab_size; ++id) {
    const bool real = id < n_pieces;
    const auto i = static_cast<size_t>(id);
    tokens.push_back(GgufValue::String(real ? vocab.pieces[i] : absl::StrCat("[PAD", id, "]")));
    scores.push_back(GgufValue::Float32(real ? vocab.scores[i] : -10000.0f));
    types.push_back(
        Int32(static_cast<int32_t>(real ? vocab.types[i] : SpPieceType::kUnused)));
  }
  f->metadata.emplace_back("tokenizer.ggml.model", GgufValue::String("llama"));
  f->metadata.emplace_back("tokenizer.ggml.tokens", Array(GgufType::kString, std::move(tokens)));
  f->metadata.emplace_back("tokenizer.ggml.scores", Array(GgufType::kFloat32, std::move(scores)));
  f->metadata.emplace_back("tokenizer.ggml.token_type", Array(GgufType::kInt32, std::move(types)));
  f->metadata.emplace_back("tokenizer.ggml.bos_token_id",
                           GgufValue::Uint32(static_cast<uint32_t>(c.bos_token_id)));
  f->metadata.emplace_back("tokenizer.ggml.eos_token_id",
                           GgufValue::Uint32(static_cast<uint32_t>(c.eos_token_id)));
  if (vocab.unk_id >= 0) {
    f->metadata.emplace_back("tokenizer.ggml.unknown_token_id",
                             GgufValue::Uint32(static_cast<uint32_t>(vocab.unk_id)));
  }
  const int64_t pad = c.pad_token_id >= 0 ? c.pad_token_id : vocab.pad_id;
  if (pad >= 0) {
    f->metadata.emplace_back("tokenizer.ggml.padding_token_id",
                             GgufValue::Uint32(static_cast<uint32_t>(pad)));
  }
  f->metadata.emplace_back("tokenizer.ggml.add_bos_token", Bool(true));
  f->metadata.emplace_back("tokenizer.ggml.add_eos_token", Bool(false));
  f->metadata.emplace_back("tokenizer.ggml.add_space_prefix", Bool(vocab.add_dummy_prefix));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<GgmlType> ParseGgufModelType(const std::string& name) {
  if (name == "f32") return GgmlType::kF32;
  if (name == "f16") return GgmlType::kF16;
  if (name == "q8_0") return GgmlType::kQ8_0;
  return absl::InvalidArgumentError(
      absl::StrCat("GGUF type '", name, "' is not one of f32, f16, q8_0"));
}

std::vector<uint8_t> QuantizeQ8_0(const float* x, size_t n) {
  const size_t blocks = n / kQ8_0Block;
  std::vector<uint8_t> out(blocks * GgmlTypeSize(static_cast<uint32_t>(GgmlType::kQ8_0)));
  uint8_t* o = out.data();
  for (size_t b = 0; b < blocks; ++b, x += kQ8_0Block) {
    float amax = 0;
    for (int64_t j = 0; j < kQ8_0Block; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    const uint16_t h = io::FloatToHalf(d);
    std::memcpy(o, &h, 2);
    for (int64_t j = 0; j < kQ8_0Block; ++j) {
      o[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::round(x[j] * id)));
    }
    o += 2 + kQ8_0Block;
  }
  return out;
}

absl::StatusOr<GgufFile> ModelToGguf(const model::LlamaModel& m, const SentencePieceVocab& vocab,
                                     const GgufModelOptions& options) {
  if (options.type != GgmlType::kF32 && options.type != GgmlType::kF16 &&
      options.type != GgmlType::kQ8_0) {
    return absl::InvalidArgumentError(absl::StrCat("GGUF export: tensor type ",
                                                   GgmlTypeName(options.type),
                                                   " is not supported (F32, F16 or Q8_0)"));
  }
  if (options.name.empty()) {
    return absl::InvalidArgumentError("GGUF export: general.name must not be empty");
  }
  const model::LlamaConfig& c = m.config();
  for (model::Proj p : {model::Proj::kQ, model::Proj::kK}) {
    const int64_t heads = internal::PermuteHeads(c, p);
    if (c.head_dim % 2 != 0 || m.layers.empty() ||
        m.layers[0].Get(p).out_features() != heads * c.head_dim) {
      return absl::InvalidArgumentError(absl::StrCat(
          "GGUF export: ", model::ProjName(p), " rows are not ", heads, " heads x head_dim ",
          c.head_dim, ": cannot apply the rotary permutation llama.cpp expects"));
    }
  }
  GgufFile f;
  auto u32 = [](int64_t v) { return GgufValue::Uint32(static_cast<uint32_t>(v)); };
  auto f32 = [](double v) { return GgufValue::Float32(static_cast<float>(v)); };
  f.metadata.emplace_back("general.architecture", GgufValue::String("llama"));
  f.metadata.emplace_back("general.name", GgufValue::String(options.name));
  f.metadata.emplace_back("general.file_type", u32(FileType(options.type)));
  f.metadata.emplace_back("general.quantization_version", u32(kGgmlQuantVersion));
  f.metadata.emplace_back("llama.context_length", u32(c.max_position_embeddings));
  f.metadata.emplace_back("llama.embedding_length", u32(c.hidden_size));
  f.metadata.emplace_back("llama.block_count", u32(c.num_hidden_layers));
  f.metadata.emplace_back("llama.feed_forward_length", u32(c.intermediate_size));
  f.metadata.emplace_back("llama.attention.head_count", u32(c.num_attention_heads));
  f.metadata.emplace_back("llama.attention.head_count_kv", u32(c.num_key_value_heads));
  f.metadata.emplace_back("llama.attention.key_length", u32(c.head_dim));
  f.metadata.emplace_back("llama.attention.value_length", u32(c.head_dim));
  f.metadata.emplace_back("llama.rope.dimension_count", u32(c.head_dim));
  f.metadata.emplace_back("llama.rope.freq_base", f32(c.rope_theta));
  f.metadata.emplace_back("llama.attention.layer_norm_rms_epsilon", f32(c.rms_norm_eps));
  f.metadata.emplace_back("llama.vocab_size", u32(c.vocab_size));
  if (auto st = AddTokenizer(c, vocab, &f); !st.ok()) return st;
  for (const auto& [k, v] : options.extra_strings) {
    if (f.Find(k) != nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("GGUF export: extra key '", k, "' repeats a key the exporter writes"));
    }
    f.metadata.emplace_back(k, GgufValue::String(v));
  }

  torch::NoGradGuard no_grad;
  const GgmlType t = options.type;
  f.tensors.push_back(MakeTensor("token_embd.weight", m.embed_tokens, t));
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const model::DecoderLayer& layer = m.layers[static_cast<size_t>(l)];
    const std::string blk = absl::StrCat("blk.", l, ".");
    f.tensors.push_back(MakeTensor(blk + "attn_norm.weight", layer.input_layernorm,
                                   GgmlType::kF32));
    for (model::Proj p : kProjOrder) {
      if (p == model::Proj::kGate) {
        f.tensors.push_back(MakeTensor(blk + "ffn_norm.weight", layer.post_attention_layernorm,
                                       GgmlType::kF32));
      }
      torch::Tensor w = layer.Get(p).DenseWeight();
      if (const int64_t heads = internal::PermuteHeads(c, p); heads > 0) {
        w = internal::PermuteRows(w, heads, /*inverse=*/false);
      }
      f.tensors.push_back(MakeTensor(GgufBaseTensorName(static_cast<int>(l), p), w, t));
    }
  }
  f.tensors.push_back(MakeTensor("output_norm.weight", m.norm, GgmlType::kF32));
  if (m.lm_head.defined()) f.tensors.push_back(MakeTensor("output.weight", m.lm_head, t));
  return f;
}

absl::Status ExportModelGguf(const model::LlamaModel& model, const SentencePieceVocab& vocab,
                             const std::string& path, const GgufModelOptions& options) {
  auto f = ModelToGguf(model, vocab, options);
  if (!f.ok()) {
    return absl::Status(f.status().code(), absl::StrCat(path, ": ", f.status().message()));
  }
  return WriteGguf(path, *f);
}

}  // namespace fedlora::adapters
