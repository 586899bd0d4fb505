#include "fedlora/model/checkpoint.h"

#include <torch/types.h>
#include <torch/utils.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/io/safetensors.h"

namespace fedlora::model {
namespace {

namespace fs = std::filesystem;
using io::SafetensorsFile;
using io::TensorView;

std::string ShapeStr(const std::vector<int64_t>& s) { return "[" + absl::StrJoin(s, ", ") + "]"; }

// Wraps a view as a float32 tensor: zero-copy for aligned F32, converted copy otherwise.
absl::StatusOr<torch::Tensor> ToTensor(const TensorView& view,
                                       const std::shared_ptr<SafetensorsFile>& file,
                                       bool writable) {
  auto shape = view.shape;
  const size_t count = static_cast<size_t>(view.numel());
  if (view.dtype == io::DType::kF32 && !writable &&
      reinterpret_cast<uintptr_t>(view.data) % alignof(float) == 0) {
    std::shared_ptr<SafetensorsFile> keep = file;
    return torch::from_blob(
        const_cast<uint8_t*>(view.data), shape, [keep](void*) mutable { keep.reset(); },
        torch::kFloat);
  }
  torch::Tensor out = torch::empty(shape, torch::kFloat);
  absl::Status s = io::ConvertToF32(view.dtype, view.data, count, out.data_ptr<float>());
  if (!s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        file->path(), ": tensor '", view.name, "' has dtype ", io::DTypeName(view.dtype),
        "; expected F32, F16 or BF16 (hint: quantized checkpoints are not supported here)"));
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> ShardPaths(const std::string& dir) {
  fs::path single = fs::path(dir) / "model.safetensors";
  if (fs::exists(single)) return std::vector<std::string>{single.string()};
  fs::path index = fs::path(dir) / "model.safetensors.index.json";
  if (!fs::exists(index)) {
    return absl::NotFoundError(absl::StrCat(
        dir,
        ": neither model.safetensors nor model.safetensors.index.json found (hint: pass a "
        "Hugging Face model directory, or create one with `fedlora pretrain`)"));
  }
  FEDLORA_ASSIGN_OR_RETURN(std::string text, ReadFileToString(index.string()));
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("weight_map") ||
      !j["weight_map"].is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(index.string(), ": expected a JSON object with a \"weight_map\" object"));
  }
  std::set<std::string> files;
  for (auto& [name, file] : j["weight_map"].items()) {
    if (!file.is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(index.string(), ": weight_map entry '", name, "' is not a file name"));
    }
    std::string f = file.get<std::string>();
    if (f.find('/') != std::string::npos || f.find("..") != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(index.string(), ": shard name '", f, "' must be a plain file name"));
    }
    files.insert((fs::path(dir) / f).string());
  }
  return std::vector<std::string>(files.begin(), files.end());
}

}  // namespace

absl::StatusOr<std::unique_ptr<LlamaModel>> LoadLlamaModel(const std::string& dir,
                                                           const LoadOptions& options) {
  fs::path config_path = fs::path(dir) / "config.json";
  FEDLORA_ASSIGN_OR_RETURN(LlamaConfig config, LoadLlamaConfig(config_path.string()));
  FEDLORA_ASSIGN_OR_RETURN(std::vector<std::string> shards, ShardPaths(dir));

  // Shapes the config implies, by Hugging Face name.
  auto expected = [&](const std::string& name) -> std::vector<int64_t> {
    const int64_t d = config.hidden_size, hd = config.head_dim;
    if (name == "model.embed_tokens.weight" || name == "lm_head.weight")
      return {config.vocab_size, d};
    if (name == "model.norm.weight") return {d};
    if (name.find("layernorm") != std::string::npos) return {d};
    if (name.find("q_proj") != std::string::npos) return {config.num_attention_heads * hd, d};
    if (name.find("k_proj") != std::string::npos || name.find("v_proj") != std::string::npos)
      return {config.num_key_value_heads * hd, d};
    if (name.find("o_proj") != std::string::npos) return {d, config.num_attention_heads * hd};
    if (name.find("down_proj") != std::string::npos) return {d, config.intermediate_size};
    return {config.intermediate_size, d};  // gate_proj, up_proj
  };

  std::map<std::string, std::pair<const TensorView*, std::shared_ptr<SafetensorsFile>>> found;
  for (const std::string& path : shards) {
    FEDLORA_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> opened, SafetensorsFile::Open(path));
    std::shared_ptr<SafetensorsFile> file(std::move(opened));
    for (const TensorView& view : file->tensors()) found[view.name] = {&view, file};
  }

  auto check_shape = [&](const std::string& name) -> absl::Status {
    auto it = found.find(name);
    if (it == found.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          dir, ": tensor '", name, "' is missing from ", absl::StrJoin(shards, ", "),
          " (hint: the checkpoint does not match its config.json, or is not a Llama model)"));
    }
    const TensorView& view = *it->second.first;
    std::vector<int64_t> want = expected(name);
    if (view.shape != want) {
      return absl::InvalidArgumentError(
          absl::StrCat(it->second.second->path(), ": tensor '", name, "' has shape ",
                       ShapeStr(view.shape), " but config.json implies ", ShapeStr(want),
                       " (hint: wrong config.json for these weights?)"));
    }
    return absl::OkStatus();
  };

  // Sizes the weights cannot back are refused before the model is built: its constructor
  // allocates num_hidden_layers layers and RoPE tables of head_dim columns.
  int64_t file_layers = 0;
  for (const auto& entry : found) {
    absl::string_view name = entry.first;
    if (!absl::ConsumePrefix(&name, "model.layers.")) continue;
    int64_t index = 0;
    if (absl::SimpleAtoi(name.substr(0, name.find('.')), &index) && index >= 0) {
      file_layers = std::max(file_layers, index + 1);
    }
  }
  if (config.num_hidden_layers > file_layers) {
    return absl::InvalidArgumentError(
        absl::StrCat(config_path.string(), ": num_hidden_layers = ", config.num_hidden_layers,
                     " is out of range; allowed: ",
                     file_layers > 0 ? absl::StrCat("1..", file_layers, ", the layers in ")
                                     : std::string("none: no model.layers.* tensors in "),
                     absl::StrJoin(shards, ", "), " (hint: wrong config.json for these weights?)"));
  }
  for (const char* name : {"model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight"}) {
    if (found.count(name) != 0) FEDLORA_RETURN_IF_ERROR(check_shape(name));
  }

  auto model = std::make_unique<LlamaModel>(config);
  torch::NoGradGuard no_grad;
  for (auto& [name, tensor] : model->NamedParameters()) {
    FEDLORA_RETURN_IF_ERROR(check_shape(name));
    const auto& [view, file] = found.at(name);
    FEDLORA_ASSIGN_OR_RETURN(*tensor, ToTensor(*view, file, options.writable));
    FEDLORA_RETURN_IF_ERROR(CheckFiniteWeights(*tensor, file->path(), name));
  }
  if (config.tie_word_embeddings) model->lm_head = torch::Tensor();
  return model;
}

absl::Status CheckFiniteWeights(const torch::Tensor& t, const std::string& file,
                                const std::string& name) {
  if (!t.is_floating_point() || t.numel() == 0) return absl::OkStatus();
  const torch::Tensor bad = ~torch::isfinite(t);
  if (!bad.any().item<bool>()) return absl::OkStatus();
  const int64_t count = bad.sum().item<int64_t>();
  const int64_t first = bad.flatten().nonzero()[0][0].item<int64_t>();
  return absl::InvalidArgumentError(absl::StrCat(
      file, ": non-finite values in tensor '", name, "': ", count, " of ", t.numel(),
      " entries are NaN or Inf, the first at flat index ", first,
      " (hint: the file is corrupt or training diverged; re-export it or use an earlier "
      "checkpoint)"));
}

absl::Status SaveLlamaModel(const LlamaModel& model, const std::string& dir) {
  FEDLORA_RETURN_IF_ERROR(MakeDirs(dir));
  std::vector<torch::Tensor> keep;
  std::vector<io::TensorView> views;
  // Compressed (frozen) projections are written expanded to float32.
  std::map<const torch::Tensor*, const Linear*> frozen;
  for (const auto& layer : model.layers) {
    for (const Linear& lin : layer.proj) {
      if (lin.frozen) frozen[&lin.weight] = &lin;
    }
  }
  for (const auto& [name, tensor] : model.NamedParameters()) {
    auto it = frozen.find(tensor);
    torch::Tensor t = it != frozen.end() ? it->second->DenseWeight().contiguous()
                                         : tensor->detach().to(torch::kFloat).contiguous();
    keep.push_back(t);
    io::TensorView v;
    v.name = name;
    v.dtype = io::DType::kF32;
    v.shape = t.sizes().vec();
    v.data = reinterpret_cast<const uint8_t*>(t.data_ptr<float>());
    v.nbytes = static_cast<size_t>(t.numel()) * sizeof(float);
    views.push_back(std::move(v));
  }
  FEDLORA_RETURN_IF_ERROR(io::WriteSafetensors((fs::path(dir) / "model.safetensors").string(),
                                               views, {{"format", "pt"}}));
  return WriteFileAtomic((fs::path(dir) / "config.json").string(),
                         LlamaConfigToJson(model.config()).dump(2) + "\n");
}

}  // namespace fedlora::model
