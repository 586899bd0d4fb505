#include "fedlora/compress/checkpoint.h"

#include <cstring>
#include <filesystem>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "fedlora/common/encoding.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/compress/int8_compute.h"
#include "fedlora/compress/packed_weight.h"
#include "fedlora/io/model_identity.h"
#include "fedlora/io/safetensors.h"
#include "fedlora/model/checkpoint.h"

namespace fedlora::compress {
namespace {

namespace fs = std::filesystem;

io::DType IoType(torch::ScalarType t) {
  switch (t) {
    case torch::kUInt8:
      return io::DType::kU8;
    case torch::kInt8:
      return io::DType::kI8;
    case torch::kHalf:
      return io::DType::kF16;
    case torch::kInt32:
      return io::DType::kI32;
    default:
      return io::DType::kF32;
  }
}

// "model.layers.0.self_attn.q_proj.weight" -> "model.layers.0.self_attn.q_proj"
std::string Prefix(const std::string& name) { return name.substr(0, name.rfind(".weight")); }

// Projection Linear behind each NamedParameters() pointer.
std::map<const torch::Tensor*, const model::Linear*> Projections(const model::LlamaModel& m) {
  std::map<const torch::Tensor*, const model::Linear*> out;
  for (const auto& layer : m.layers) {
    for (const model::Linear& lin : layer.proj) out[&lin.weight] = &lin;
  }
  return out;
}

}  // namespace

bool IsCompressedDir(const std::string& dir) {
  std::error_code ec;
  return fs::exists(fs::path(dir) / kCompressionJson, ec);
}

int64_t ResidentWeightBytes(const model::LlamaModel& m) {
  int64_t total = 0;
  auto proj = Projections(m);
  for (const auto& [name, t] : m.NamedParameters()) {
    auto it = proj.find(t);
    if (it != proj.end() && it->second->frozen) {
      total += it->second->frozen->bytes();
      if (!it->second->IsPlaceholder()) total += TensorBytes(*t);
    } else {
      total += TensorBytes(*t);
    }
  }
  return total;
}

absl::Status SaveCompressedModel(const model::LlamaModel& m, const std::string& source_dir,
                                 const std::string& out_dir, nlohmann::json info) {
  FEDLORA_RETURN_IF_ERROR(MakeDirs(out_dir));
  NamedTensors tensors;
  nlohmann::json schemes = nlohmann::json::object();
  auto proj = Projections(m);
  for (const auto& [name, t] : m.NamedParameters()) {
    auto it = proj.find(t);
    if (it != proj.end()) {
      auto packed = std::dynamic_pointer_cast<const PackedWeight>(it->second->frozen);
      if (!packed || !it->second->IsPlaceholder()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "compress: projection '", name,
            "' is not packed (or carries a merged correction); cannot save it as a compressed "
            "checkpoint (hint: compress every projection first)"));
      }
      packed->Export(Prefix(name), &tensors);
      schemes[name] = packed->Scheme();
    } else {
      tensors.emplace_back(name, t->detach().to(torch::kFloat).contiguous());
    }
  }
  std::vector<io::TensorView> views;
  for (auto& [name, t] : tensors) {
    t = t.contiguous();
    io::TensorView v;
    v.name = name;
    v.dtype = IoType(t.scalar_type());
    v.shape = t.sizes().vec();
    v.data = static_cast<const uint8_t*>(t.data_ptr());
    v.nbytes = static_cast<size_t>(TensorBytes(t));
    views.push_back(std::move(v));
  }
  const std::string weights = (fs::path(out_dir) / "model.safetensors").string();
  FEDLORA_RETURN_IF_ERROR(io::WriteSafetensors(weights, views, {{"format", "pt"}}));
  FEDLORA_RETURN_IF_ERROR(WriteFileAtomic((fs::path(out_dir) / "config.json").string(),
                                          model::LlamaConfigToJson(m.config()).dump(2) + "\n"));
  const fs::path tok = fs::path(source_dir) / "tokenizer.model";
  if (fs::exists(tok)) {
    FEDLORA_ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(tok.string()));
    FEDLORA_RETURN_IF_ERROR(
        WriteFileAtomic((fs::path(out_dir) / "tokenizer.model").string(), bytes));
  }
  FEDLORA_ASSIGN_OR_RETURN(std::string source_sha, io::ModelSha256(source_dir));
  FEDLORA_ASSIGN_OR_RETURN(std::string file_bytes, ReadFileToString(weights));
  info["format"] = kCompressedFormat;
  info["version"] = 1;
  info["source_sha256"] = source_sha;
  info["weights_sha256"] = HexEncode(Sha256(file_bytes));
  info["tensors"] = schemes;
  return WriteFileAtomic((fs::path(out_dir) / kCompressionJson).string(), info.dump(1) + "\n");
}

absl::StatusOr<nlohmann::json> ReadCompressionJson(const std::string& dir) {
  const std::string path = (fs::path(dir) / kCompressionJson).string();
  FEDLORA_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || j.value("format", "") != kCompressedFormat ||
      !j.contains("version") || j["version"] != 1 || !j.contains("tensors") ||
      !j["tensors"].is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a ", kCompressedFormat,
                     " version 1 description (a JSON object with \"format\", \"version\": 1 and a "
                     "\"tensors\" object) (hint: the file is corrupt; re-run `fedlora compress`)"));
  }
  return j;
}

absl::StatusOr<std::unique_ptr<model::LlamaModel>> LoadCompressedModel(const std::string& dir) {
  FEDLORA_ASSIGN_OR_RETURN(const Int8Mode int8_mode, Int8ModeFromEnv());
  FEDLORA_ASSIGN_OR_RETURN(nlohmann::json info, ReadCompressionJson(dir));
  FEDLORA_ASSIGN_OR_RETURN(model::LlamaConfig config,
                           model::LoadLlamaConfig((fs::path(dir) / "config.json").string()));
  const std::string weights = (fs::path(dir) / "model.safetensors").string();
  FEDLORA_ASSIGN_OR_RETURN(std::string file_bytes, ReadFileToString(weights));
  const std::string sha = HexEncode(Sha256(file_bytes));
  file_bytes.clear();
  file_bytes.shrink_to_fit();
  if (info.contains("weights_sha256") && info["weights_sha256"] != sha) {
    return absl::InvalidArgumentError(
        absl::StrCat(weights, ": SHA-256 ", sha,
                     " differs from weights_sha256 in compression.json (hint: the "
                     "file is corrupt or was replaced; re-run `fedlora compress`)"));
  }
  FEDLORA_ASSIGN_OR_RETURN(std::unique_ptr<io::SafetensorsFile> file,
                           io::SafetensorsFile::Open(weights));
  TensorReader reader(file.get());
  auto m = std::make_unique<model::LlamaModel>(config);
  torch::NoGradGuard no_grad;
  auto proj = Projections(*m);
  const nlohmann::json& schemes = info["tensors"];
  for (auto& [name, t] : m->NamedParameters()) {
    auto it = proj.find(t);
    if (it != proj.end() && schemes.contains(name)) {
      FEDLORA_ASSIGN_OR_RETURN(std::shared_ptr<PackedWeight> packed,
                               LoadPacked(Prefix(name), schemes[name], &reader));
      model::Linear* lin = const_cast<model::Linear*>(it->second);
      const int64_t want_out =
          name.find("down_proj") != std::string::npos || name.find("o_proj") != std::string::npos
              ? config.hidden_size
              : -1;
      if (want_out > 0 && packed->out_features() != want_out) {
        return absl::InvalidArgumentError(absl::StrCat(
            weights, ": packed tensor '", name, "' has ", packed->out_features(),
            " outputs but config.json implies ", want_out, " (hint: wrong config.json)"));
      }
      torch::Tensor dense = packed->Dense();
      FEDLORA_RETURN_IF_ERROR(model::CheckFiniteWeights(dense, weights, name));
      lin->SetFrozen(packed);
      continue;
    }
    const io::TensorView* v = file->Find(name);
    if (v == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          weights, ": tensor '", name,
          "' is missing (neither packed in compression.json nor stored as float) (hint: the "
          "checkpoint does not match its config.json; re-run `fedlora compress`)"));
    }
    reader.MarkUsed(name);
    torch::Tensor f = torch::empty(v->shape, torch::kFloat);
    absl::Status s = io::ConvertToF32(v->dtype, v->data, v->numel(), f.data_ptr<float>());
    if (!s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(weights, ": tensor '", name, "' is ",
                                                     io::DTypeName(v->dtype),
                                                     "; expected F32, F16 or BF16"));
    }
    FEDLORA_RETURN_IF_ERROR(model::CheckFiniteWeights(f, weights, name));
    *t = f;
  }
  // Every projection must now match the config's shapes (packed ones included).
  const int64_t d = config.hidden_size, hd = config.head_dim, ffn = config.intermediate_size;
  const int64_t shapes[model::kNumProj][2] = {{config.num_attention_heads * hd, d},
                                              {config.num_key_value_heads * hd, d},
                                              {config.num_key_value_heads * hd, d},
                                              {d, config.num_attention_heads * hd},
                                              {ffn, d},
                                              {ffn, d},
                                              {d, ffn}};
  for (size_t l = 0; l < m->layers.size(); ++l) {
    for (int p = 0; p < model::kNumProj; ++p) {
      const model::Linear& lin = m->layers[l].proj[p];
      if (lin.out_features() != shapes[p][0] || lin.in_features() != shapes[p][1]) {
        return absl::InvalidArgumentError(absl::StrCat(
            weights, ": tensor 'model.layers.", l, ".", model::ProjModule(model::Proj(p)), ".",
            model::ProjName(model::Proj(p)), ".weight' is [", lin.out_features(), ", ",
            lin.in_features(), "] but config.json implies [", shapes[p][0], ", ", shapes[p][1],
            "] (hint: wrong config.json for these weights?)"));
      }
    }
  }
  for (const io::TensorView& v : file->tensors()) {
    if (reader.used().count(v.name) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          weights, ": unexpected tensor '", v.name,
          "' (not described by compression.json) (hint: compression.json and model.safetensors "
          "come from different runs; re-run `fedlora compress`)"));
    }
  }
  if (config.tie_word_embeddings) m->lm_head = torch::Tensor();
  if (Int8ComputeEnabled(int8_mode)) UseInt8Compute(*m);
  return m;
}

}  // namespace fedlora::compress
