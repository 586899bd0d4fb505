// LoraAdapter::LoadPeft / SavePeft: Hugging Face PEFT adapter directories.
#include <ATen/ATen.h>

#include <filesystem>
#include <map>
#include <regex>
#include <set>

#include "absl/strings/str_cat.h"
#include "fedlora/adapters/lora_adapter.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/io/safetensors.h"
#include "fedlora/model/checkpoint.h"
#include "slots.h"

namespace fedlora::adapters {
namespace {

namespace fs = std::filesystem;
using model::Proj;

constexpr const char* kConfigFile = "adapter_config.json";
constexpr const char* kWeightsFile = "adapter_model.safetensors";

struct Parsed {
  int layer;
  Proj proj;
  char which;  // 'A' or 'B'
};

// Parses a PEFT LoRA tensor name; false for anything else.
bool ParseName(const std::string& name, Parsed* out, std::string* module) {
  static const std::regex re(
      R"(^base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+)\.lora_([AB])(\.default)?\.weight$)");
  std::smatch m;
  if (!std::regex_match(name, m, re)) return false;
  if (m[1].length() > 6 || !model::ParseProj(m[3].str(), &out->proj)) return false;
  out->layer = std::stoi(m[1].str());
  out->which = m[4].str()[0];
  *module = m[2].str();
  return true;
}

absl::StatusOr<torch::Tensor> ToFloatTensor(const io::TensorView& v, const std::string& path) {
  torch::Tensor t = torch::empty(v.shape, torch::kFloat);
  absl::Status s =
      io::ConvertToF32(v.dtype, v.data, static_cast<size_t>(v.numel()), t.data_ptr<float>());
  if (!s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": tensor '", v.name, "' has dtype ",
                                                   io::DTypeName(v.dtype),
                                                   "; expected F32, F16 or BF16"));
  }
  return t;
}

}  // namespace

absl::StatusOr<LoraAdapter> LoraAdapter::LoadPeft(const std::string& dir) {
  const std::string config_path = (fs::path(dir) / kConfigFile).string();
  const std::string weights_path = (fs::path(dir) / kWeightsFile).string();
  if (!fs::exists(config_path)) {
    return absl::NotFoundError(
        absl::StrCat(config_path,
                     " not found (hint: pass a PEFT adapter directory, as written by "
                     "`save_pretrained` or LoraAdapter::SavePeft)"));
  }
  FEDLORA_ASSIGN_OR_RETURN(std::string text, ReadFileToString(config_path));
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) {
    return absl::InvalidArgumentError(absl::StrCat(config_path, ": not valid JSON"));
  }
  FEDLORA_ASSIGN_OR_RETURN(LoraConfig config, LoraConfig::FromPeftJson(j, config_path));
  if (!fs::exists(weights_path)) {
    const bool has_bin = fs::exists(fs::path(dir) / "adapter_model.bin");
    return absl::NotFoundError(
        absl::StrCat(weights_path, " not found",
                     has_bin ? " (hint: adapter_model.bin (pickle) is not read; re-save with "
                               "safe_serialization=True)"
                             : ""));
  }
  FEDLORA_ASSIGN_OR_RETURN(auto file, io::SafetensorsFile::Open(weights_path));

  const std::set<Proj> targets(config.targets.begin(), config.targets.end());
  const std::set<int> listed(config.layers.begin(), config.layers.end());
  std::map<std::tuple<int, Proj, char>, torch::Tensor> found;
  int max_layer = -1;
  for (const io::TensorView& v : file->tensors()) {
    Parsed p;
    std::string module;
    if (!ParseName(v.name, &p, &module)) {
      return absl::InvalidArgumentError(absl::StrCat(
          weights_path, ": unexpected tensor '", v.name,
          "'; expected base_model.model.model.layers.N.<self_attn|mlp>.<proj>.lora_<A|B>.weight "
          "(hint: only LoRA on Llama q/k/v/o/gate/up/down projections is supported)"));
    }
    if (module != model::ProjModule(p.proj)) {
      return absl::InvalidArgumentError(absl::StrCat(weights_path, ": tensor '", v.name,
                                                     "': ", model::ProjName(p.proj), " lives in ",
                                                     model::ProjModule(p.proj), ", not ", module));
    }
    if (!targets.count(p.proj)) {
      return absl::InvalidArgumentError(
          absl::StrCat(weights_path, ": tensor '", v.name, "' is for ", model::ProjName(p.proj),
                       ", which target_modules in ", config_path, " does not list"));
    }
    if (!listed.empty() && !listed.count(p.layer)) {
      return absl::InvalidArgumentError(
          absl::StrCat(weights_path, ": tensor '", v.name, "' is for layer ", p.layer,
                       ", which layers_to_transform in ", config_path, " does not list"));
    }
    const auto key = std::make_tuple(p.layer, p.proj, p.which);
    if (found.count(key)) {
      return absl::InvalidArgumentError(absl::StrCat(weights_path, ": tensor '", v.name,
                                                     "' appears twice (with and without "
                                                     "'.default')"));
    }
    if (v.shape.size() != 2 || v.shape[p.which == 'A' ? 0 : 1] != config.rank) {
      const std::string want = p.which == 'A' ? absl::StrCat("[", config.rank, ", in]")
                                              : absl::StrCat("[out, ", config.rank, "]");
      return absl::InvalidArgumentError(
          absl::StrCat(weights_path, ": tensor '", v.name, "' has shape ",
                       internal::ShapeStr(v.shape), "; r = ", config.rank, " in ", config_path,
                       " needs ", want, " (hint: config and weights from different adapters?)"));
    }
    FEDLORA_ASSIGN_OR_RETURN(found[key], ToFloatTensor(v, weights_path));
    FEDLORA_RETURN_IF_ERROR(model::CheckFiniteWeights(found[key], weights_path, v.name));
    max_layer = std::max(max_layer, p.layer);
  }
  std::vector<int> layers = config.layers;
  if (layers.empty()) {
    for (int i = 0; i <= max_layer; ++i) layers.push_back(i);
  }
  if (layers.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(weights_path, ": contains no LoRA tensors"));
  }
  std::vector<Slot> slots;
  for (int layer : layers) {
    for (Proj p : targets) {
      Slot s{layer, p, {}, {}};
      for (char which : {'A', 'B'}) {
        auto it = found.find(std::make_tuple(layer, p, which));
        if (it == found.end()) {
          return absl::InvalidArgumentError(
              absl::StrCat(weights_path, ": missing tensor '", internal::PeftName(layer, p, which),
                           "' (hint: file truncated or saved from a different config?)"));
        }
        (which == 'A' ? s.A : s.B) = it->second;
      }
      slots.push_back(std::move(s));
    }
  }
  return MakeAdapterFromSlots(std::move(config), std::move(slots));
}

absl::Status LoraAdapter::SavePeft(const std::string& dir) const {
  FEDLORA_RETURN_IF_ERROR(MakeDirs(dir));
  std::vector<torch::Tensor> keep;  // float32 contiguous copies backing the views
  std::vector<io::TensorView> views;
  for (const auto& s : slots_) {
    for (char which : {'A', 'B'}) {
      torch::Tensor t = (which == 'A' ? s.A : s.B).detach().to(torch::kFloat).contiguous();
      io::TensorView v;
      v.name = internal::PeftName(s.layer, s.proj, which);
      v.dtype = io::DType::kF32;
      v.shape = t.sizes().vec();
      v.data = reinterpret_cast<const uint8_t*>(t.data_ptr<float>());
      v.nbytes = sizeof(float) * t.numel();
      views.push_back(std::move(v));
      keep.push_back(std::move(t));
    }
  }
  FEDLORA_RETURN_IF_ERROR(
      io::WriteSafetensors((fs::path(dir) / kWeightsFile).string(), views, {{"format", "pt"}}));
  return WriteFileAtomic((fs::path(dir) / kConfigFile).string(),
                         config_.ToPeftJson().dump(2) + "\n");
}

}  // namespace fedlora::adapters
