// fedlora export --model DIR --format gguf --out model.gguf [--adapter DIR]... [--type T]
// The whole model (base, adapters merged in, tokenizer) for llama.cpp / ollama
// (adapters/export_gguf_model.h, docs/releases.md).
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli_common.h"
#include "fedlora/adapters/export_gguf_model.h"
#include "fedlora/adapters/lora_adapter.h"
#include "fedlora/adapters/sp_vocab.h"
#include "fedlora/device/runtime.h"
#include "fedlora/model/threads.h"

namespace fedlora::cli {

void RegisterCommand_export(CLI::App& app) {
  struct Opts {
    std::string model, format = "gguf", out, type = "f32", name;
    std::vector<std::string> adapters;
    int threads = 0;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand(
      "export", "write a whole model (base, optional merged adapters, tokenizer) for llama.cpp");
  cmd->footer(
      "Examples:\n"
      "  fedlora export --model base --format gguf --type q8_0 --out base.q8_0.gguf\n"
      "  fedlora export --model base --adapter personal-adapter --out merged.gguf\n"
      "  llama-cli -m base.q8_0.gguf --lora adapter.gguf   # adapter: `release export --format gguf`\n"
      "A compressed base (compression.json) is dequantized, then written in --type. A signed\n"
      "release is exported first with `fedlora release export REL --format peft` (verified),\n"
      "then merged with --adapter. Layout and measured agreement with llama.cpp:\n"
      "docs/releases.md.");
  cmd->add_option("--model", o->model, "base model folder (float or compressed)")->required();
  cmd->add_option("--format", o->format, "output format")
      ->capture_default_str()
      ->check(CLI::IsMember({"gguf"}));
  cmd->add_option("--out", o->out, "output file")->required();
  cmd->add_option("--type", o->type, "tensor type: f32|f16|q8_0 (norms stay f32)")
      ->capture_default_str()
      ->check(CLI::IsMember({"f32", "f16", "q8_0"}));
  cmd->add_option("--adapter", o->adapters,
                  "PEFT adapter folder merged into the weights (repeatable, merged in turn)")
      ->allow_extra_args(false);
  cmd->add_option("--name", o->name, "general.name (default: the model folder's name)");
  AddThreadsOption(cmd, &o->threads);
  cmd->add_flag("--json", o->json, "print one JSON object");
  cmd->callback([o] {
    namespace fs = std::filesystem;
    for (const auto& dir : o->adapters) {
      if (fs::exists(fs::path(dir) / "manifest.json")) {
        return (void)Fail(absl::InvalidArgumentError(absl::StrCat(
            "--adapter ", dir, " is a release folder (hint: verify and unpack it first with "
            "`fedlora release export ", dir, " --format peft --base ", o->model,
            " --trusted KEY.pub --out DIR`, then pass --adapter DIR)")));
      }
    }
    model::ConfigureThreads({o->threads, 1});
    auto type = adapters::ParseGgufModelType(o->type);
    if (!type.ok()) return (void)Fail(type.status());
    auto rt = device::LoadRuntime(o->model);
    if (!rt.ok()) return (void)Fail(rt.status());
    for (const auto& dir : o->adapters) {
      auto adapter = adapters::LoraAdapter::LoadPeft(dir);
      if (!adapter.ok()) return (void)Fail(adapter.status());
      if (auto s = adapter->Merge(*rt->model); !s.ok()) {
        return (void)Fail(absl::Status(
            s.code(), absl::StrCat("adapter ", dir, " does not fit ", o->model, ": ", s.message())));
      }
    }
    auto vocab = adapters::ReadSentencePieceVocab((fs::path(o->model) / "tokenizer.model").string());
    if (!vocab.ok()) return (void)Fail(vocab.status());
    adapters::GgufModelOptions go;
    go.type = *type;
    go.name = o->name.empty() ? fs::path(o->model).lexically_normal().filename().string() : o->name;
    if (go.name.empty()) go.name = "fedlora model";
    if (!o->adapters.empty()) {
      go.extra_strings.emplace_back("fedlora.merged_adapters", absl::StrJoin(o->adapters, ","));
    }
    if (auto s = adapters::ExportModelGguf(*rt->model, *vocab, o->out, go); !s.ok()) {
      return (void)Fail(s);
    }
    std::error_code ec;
    const auto bytes = fs::file_size(o->out, ec);
    if (o->json) {
      return PrintJson({{"out", o->out},
                        {"format", o->format},
                        {"type", o->type},
                        {"bytes", ec ? 0 : bytes},
                        {"merged_adapters", o->adapters}});
    }
    std::printf("wrote %s (%s, %llu bytes%s)\n", o->out.c_str(), o->type.c_str(),
                static_cast<unsigned long long>(ec ? 0 : bytes),
                o->adapters.empty() ? "" : absl::StrCat(", ", o->adapters.size(),
                                                        " adapter(s) merged").c_str());
  });
}

}  // namespace fedlora::cli
