// fedlora inspect PATH: what a model directory, a PEFT adapter directory, an adapter blob
// (from a coordinator's state folder or a device's cache) or a GGUF file (`fedlora export`,
// `release export --format gguf`) holds, with its hashes.
#include <cstdio>
#include <filesystem>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli_common.h"
#include "fedlora/adapters/gguf.h"
#include "fedlora/common/adapter_blob.h"
#include "fedlora/common/encoding.h"
#include "fedlora/common/file_util.h"
#include "fedlora/compress/checkpoint.h"
#include "fedlora/io/model_identity.h"
#include "fedlora/io/safetensors.h"
#include "fedlora/model/config.h"
#include "fedlora/model/tokenizer.h"

namespace fedlora::cli {
namespace {

namespace fs = std::filesystem;

// Tensor count, parameter count and dtypes of every *.safetensors file in `dir`.
absl::Status SummarizeTensors(const std::string& dir, nlohmann::json* out) {
  int64_t tensors = 0, params = 0, bytes = 0;
  std::map<std::string, int64_t> dtypes;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".safetensors") continue;
    auto f = io::SafetensorsFile::Open(e.path().string());
    if (!f.ok()) return f.status();
    for (const auto& t : (*f)->tensors()) {
      tensors++;
      params += t.numel();
      bytes += static_cast<int64_t>(t.nbytes);
      dtypes[io::DTypeName(t.dtype)] += t.numel();
    }
  }
  (*out)["tensors"] = tensors;
  (*out)["parameters"] = params;
  (*out)["weight_bytes"] = bytes;
  (*out)["bits_per_weight"] = params > 0 ? 8.0 * double(bytes) / double(params) : 0.0;
  (*out)["dtypes"] = dtypes;
  return absl::OkStatus();
}

absl::StatusOr<nlohmann::json> InspectModel(const std::string& dir) {
  auto cfg = model::LoadLlamaConfig(dir + "/config.json");
  if (!cfg.ok()) return cfg.status();
  nlohmann::json j = {{"kind", "model"}, {"path", dir}};
  j["config"] = {{"hidden_size", cfg->hidden_size},
                 {"num_hidden_layers", cfg->num_hidden_layers},
                 {"num_attention_heads", cfg->num_attention_heads},
                 {"num_key_value_heads", cfg->num_key_value_heads},
                 {"intermediate_size", cfg->intermediate_size},
                 {"max_position_embeddings", cfg->max_position_embeddings},
                 {"vocab_size", cfg->vocab_size}};
  j["config_parameters"] = cfg->NumParameters();
  if (auto s = SummarizeTensors(dir, &j); !s.ok()) return s;
  if (compress::IsCompressedDir(dir)) {
    // Packed tensors are bytes, not parameters: describe the scheme instead.
    auto info = compress::ReadCompressionJson(dir);
    if (!info.ok()) return info.status();
    j["kind"] = "compressed model";
    nlohmann::json c;
    for (const char* k :
         {"method", "options", "linear_bits_per_weight", "source_sha256", "source"}) {
      if (info->contains(k)) c[k] = (*info)[k];
    }
    std::map<std::string, int64_t> schemes;
    for (auto& [name, scheme] : (*info)["tensors"].items()) schemes[scheme.dump()]++;
    c["schemes"] = schemes;
    j["compression"] = c;
    j.erase("parameters");
    j.erase("bits_per_weight");
  }
  if (fs::exists(dir + "/tokenizer.model")) {
    auto tok = model::Tokenizer::Load(dir + "/tokenizer.model", cfg->bos_token_id, cfg->eos_token_id);
    if (!tok.ok()) return tok.status();
    j["tokenizer_pieces"] = (*tok)->vocab_size();
  } else {
    j["tokenizer_pieces"] = nullptr;
  }
  auto sha = io::ModelSha256(dir);
  if (!sha.ok()) return sha.status();
  j["sha256"] = *sha;
  return j;
}

absl::StatusOr<nlohmann::json> InspectAdapter(const std::string& dir) {
  auto text = ReadFileToString(dir + "/adapter_config.json");
  if (!text.ok()) return text.status();
  auto cfg = nlohmann::json::parse(*text, nullptr, false);
  if (cfg.is_discarded()) {
    return absl::InvalidArgumentError(dir + "/adapter_config.json is not JSON");
  }
  nlohmann::json j = {{"kind", "peft adapter"}, {"path", dir}};
  for (const char* k : {"peft_type", "r", "lora_alpha", "target_modules", "layers_to_transform",
                        "use_rslora", "base_model_name_or_path", "fedlora_base_model_sha256"}) {
    if (cfg.contains(k)) j[k] = cfg[k];
  }
  if (auto s = SummarizeTensors(dir, &j); !s.ok()) return s;
  auto weights = ReadFileToString(dir + "/adapter_model.safetensors");
  if (weights.ok()) j["sha256"] = HexEncode(Sha256(*weights));
  return j;
}

absl::StatusOr<nlohmann::json> InspectBlob(const std::string& path, const std::string& bytes) {
  auto blob = DecodeAdapterBlob(bytes);
  if (!blob.ok()) return blob.status();
  nlohmann::json j = {{"kind", "adapter blob"}, {"path", path}};
  j["lora"] = blob->lora;
  j["parameters"] = blob->values.size();
  j["base_model_sha256"] = blob->base_model_sha256;
  j["bytes"] = bytes.size();
  j["sha256"] = HexEncode(Sha256(bytes));
  return j;
}

// A GGUF file: its metadata (arrays shortened), tensor count and elements per ggml type.
absl::StatusOr<nlohmann::json> InspectGguf(const std::string& path, const std::string& bytes) {
  auto f = adapters::ParseGguf(bytes, path);
  if (!f.ok()) return f.status();
  const adapters::GgufValue* type = f->Find("general.type");
  nlohmann::json j = {{"kind", type != nullptr && type->s == "adapter" ? "gguf adapter"
                                                                        : "gguf model"},
                      {"path", path}};
  nlohmann::json meta = nlohmann::json::object();
  for (const auto& [k, v] : f->metadata) meta[k] = v.DebugString();
  j["metadata"] = meta;
  std::map<std::string, int64_t> types;
  int64_t params = 0;
  for (const auto& t : f->tensors) {
    types[adapters::GgmlTypeName(static_cast<adapters::GgmlType>(t.type))] += t.numel();
    params += t.numel();
  }
  j["tensors"] = f->tensors.size();
  j["parameters"] = params;
  j["ggml_types"] = types;
  j["bytes"] = bytes.size();
  j["sha256"] = HexEncode(Sha256(bytes));
  return j;
}

absl::StatusOr<nlohmann::json> Inspect(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    if (fs::exists(fs::path(path) / "config.json")) return InspectModel(path);
    if (fs::exists(fs::path(path) / "adapter_config.json")) return InspectAdapter(path);
    return absl::InvalidArgumentError(absl::StrCat(
        path, " holds neither config.json (a model) nor adapter_config.json (a PEFT adapter)"));
  }
  if (!fs::exists(path, ec)) return absl::NotFoundError(absl::StrCat(path, ": no such file"));
  auto bytes = ReadFileToString(path);
  if (!bytes.ok()) return bytes.status();
  if (bytes->compare(0, 4, "GGUF") == 0) return InspectGguf(path, *bytes);
  return InspectBlob(path, *bytes);
}

void Print(const nlohmann::json& j) {
  std::printf("%s: %s\n", j["path"].get<std::string>().c_str(), j["kind"].get<std::string>().c_str());
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "path" || it.key() == "kind") continue;
    std::printf("  %-26s %s\n", it.key().c_str(), it->dump().c_str());
  }
}

}  // namespace

void RegisterCommand_inspect(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand(
      "inspect",
      "show what a model directory, PEFT adapter, adapter blob or GGUF file holds, with hashes");
  cmd->footer(
      "Examples:\n"
      "  fedlora inspect ../shared/fixtures/hf-tiny-llama/base\n"
      "  fedlora inspect my-adapter --json\n"
      "  fedlora inspect coord/blobs/<sha256>\n"
      "  fedlora inspect model.q8_0.gguf");
  cmd->add_option("path", *path, "model directory, adapter directory, adapter blob or GGUF file")
      ->required();
  cmd->add_flag("--json", *json, "print one JSON object");
  cmd->callback([path, json] {
    auto j = Inspect(*path);
    if (!j.ok()) return (void)Fail(j.status());
    if (*json) return PrintJson(*j);
    Print(*j);
  });
}

}  // namespace fedlora::cli
