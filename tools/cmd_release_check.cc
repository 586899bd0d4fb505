// fedlora release verify|inspect|export: checking a release folder and writing it in the
// formats apps load (docs/releases.md).
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli_common.h"
#include "fedlora/adapters/export_gguf.h"
#include "fedlora/adapters/export_merged.h"
#include "fedlora/adapters/lora_adapter.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/release.h"
#include "fedlora/device/runtime.h"
#include "fedlora/io/model_identity.h"
#include "fedlora/io/release_folder.h"
#include "fedlora/privacy/participation_accountant.h"

namespace fedlora::cli {
namespace {

void RegisterVerify(CLI::App* parent) {
  struct Opts {
    std::string dir, base, rollback;
    std::vector<std::string> trusted, revoked;
    uint64_t installed = 0;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = parent->add_subcommand("verify", "check a release as a device would, apply nothing");
  cmd->footer(
      "Examples:\n"
      "  fedlora release verify rel-1 --trusted release.key.pub --base sim-out/base-model\n"
      "  fedlora release verify rel-7 --trusted old.pub new.pub --revoked 0123456789abcdef \\\n"
      "      --base M --installed-version 8 --rollback rollback-8-7.json\n"
      "Exit status 0 only when the key is trusted and not revoked, the signature verifies, the\n"
      "base hash matches, the version is newer (or a signed rollback covers it) and every file's\n"
      "SHA-256 matches.");
  cmd->add_option("dir", o->dir, "release folder")->required();
  cmd->add_option("--trusted", o->trusted, "trusted public keys (KEY.pub), several during a rotation")
      ->required();
  cmd->add_option("--revoked", o->revoked, "revoked key ids");
  cmd->add_option("--base", o->base, "the base model folder the device runs")->required();
  cmd->add_option("--installed-version", o->installed, "version installed now (0 = none)");
  cmd->add_option("--rollback", o->rollback, "signed rollback instruction for a downgrade");
  cmd->add_flag("--json", o->json, "print one JSON object");
  cmd->callback([o] {
    TrustStore trust;
    if (auto s = trust.AddFiles(o->trusted); !s.ok()) return (void)Fail(s);
    for (const auto& id : o->revoked) trust.Revoke(id);
    auto base_sha = io::ModelSha256(o->base);
    if (!base_sha.ok()) return (void)Fail(base_sha.status());
    io::VerifyReleaseOptions vo;
    vo.base_model_sha256 = *base_sha;
    vo.installed_version = o->installed;
    if (!o->rollback.empty()) {
      auto text = ReadFileToString(o->rollback);
      if (!text.ok()) return (void)Fail(text.status());
      auto j = nlohmann::json::parse(*text, nullptr, false);
      auto r = RollbackFromJson(j);
      if (!r.ok()) return (void)Fail(r.status());
      vo.rollback = *r;
    }
    auto m = io::VerifyRelease(o->dir, trust, vo);
    if (!m.ok()) return (void)Fail(m.status());
    if (o->json) {
      return PrintJson({{"ok", true},
                        {"release_id", m->release_id},
                        {"version", m->version},
                        {"key_id", m->key_id},
                        {"files", m->files.size()}});
    }
    std::printf("OK: release %s version %llu, signed by trusted key %s, for this base, %zu files "
                "intact\n",
                m->release_id.c_str(), static_cast<unsigned long long>(m->version),
                m->key_id.c_str(), m->files.size());
  });
}

void RegisterInspect(CLI::App* parent) {
  struct Opts {
    std::string dir;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = parent->add_subcommand("inspect", "show a release's manifest (nothing verified)");
  cmd->footer("Examples:\n  fedlora release inspect rel-1\n  fedlora release inspect rel-1 --json");
  cmd->add_option("dir", o->dir, "release folder")->required();
  cmd->add_flag("--json", o->json, "print the manifest as JSON");
  cmd->callback([o] {
    auto m = io::ReadManifest(o->dir);
    if (!m.ok()) return (void)Fail(m.status());
    if (o->json) return PrintJson(ManifestToJson(*m));
    std::printf(
        "release     %s\nversion     %llu\nsegment     %s\nbase        %s\ncreated     %s\n"
        "provenance  %lld rounds (%s), delta %.3g\n"
        "            epsilon %.4g against observers of released adapters\n"
        "            epsilon %s against the coordinator (worst device)\nsigned by   %s\n",
        m->release_id.c_str(), static_cast<unsigned long long>(m->version), m->segment.c_str(),
        m->base_model_sha256.c_str(), m->created.c_str(),
        static_cast<long long>(m->provenance.rounds), m->provenance.date.c_str(),
        m->provenance.delta, m->provenance.epsilon,
        m->provenance.epsilon_coordinator
            ? privacy::FormatEpsilon(*m->provenance.epsilon_coordinator).c_str()
            : "not recorded",
        m->key_id.empty() ? "(unsigned)" : m->key_id.c_str());
    for (const auto& f : m->files) {
      std::printf("  %-40s %10llu  %s\n", f.path.c_str(), static_cast<unsigned long long>(f.bytes),
                  f.sha256.c_str());
    }
  });
}

void RegisterExport(CLI::App* parent) {
  struct Opts {
    std::string dir, format = "peft", out, base;
    std::vector<std::string> trusted;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = parent->add_subcommand("export", "write a release as PEFT, a merged HF checkpoint or GGUF");
  cmd->footer(
      "Examples:\n"
      "  fedlora release export rel-1 --format gguf --base base --out adapter.gguf \\\n"
      "      --trusted op.key.pub          # llama.cpp: llama-cli -m base.gguf --lora adapter.gguf\n"
      "  fedlora release export rel-1 --format hf-merged --base base --out merged/ --trusted op.key.pub\n"
      "The release is verified first (signer trusted, signature, base hash, every file's\n"
      "SHA-256); only what verified is exported. Formats: docs/adapters.md.");
  cmd->add_option("dir", o->dir, "release folder")->required();
  cmd->add_option("--format", o->format, "peft|hf-merged|gguf")
      ->capture_default_str()
      ->check(CLI::IsMember({"peft", "hf-merged", "gguf"}));
  cmd->add_option("--out", o->out, "output (a folder; a file for gguf)")->required();
  cmd->add_option("--base", o->base, "the base model folder the release is for")->required();
  cmd->add_option("--trusted", o->trusted, "trusted public keys (KEY.pub)")->required();
  cmd->add_flag("--json", o->json, "print one JSON object");
  cmd->callback([o] {
    auto base_sha = io::ModelSha256(o->base);
    if (!base_sha.ok()) return (void)Fail(base_sha.status());
    auto m = io::ReadManifest(o->dir);
    if (!m.ok()) return (void)Fail(m.status());
    TrustStore trust;
    if (auto s = trust.AddFiles(o->trusted); !s.ok()) return (void)Fail(s);
    io::VerifyReleaseOptions vo;
    vo.base_model_sha256 = *base_sha;
    if (auto v = io::VerifyRelease(o->dir, trust, vo); !v.ok()) return (void)Fail(v.status());
    auto adapter = adapters::LoraAdapter::LoadPeft(o->dir + "/adapter");
    if (!adapter.ok()) return (void)Fail(adapter.status());
    absl::Status s;
    if (o->format == "peft") {
      s = adapter->SavePeft(o->out);
    } else if (o->format == "hf-merged") {
      s = adapters::ExportMergedHf(o->base, *adapter, o->out);
    } else {
      auto rt = device::LoadRuntime(o->base);
      if (!rt.ok()) return (void)Fail(rt.status());
      adapters::GgufOptions go;
      go.name = absl::StrCat("fedlora release ", m->release_id);
      s = adapters::ExportGguf(*adapter, rt->model->config(), o->out, go);
    }
    if (!s.ok()) return (void)Fail(s);
    if (o->json) {
      return PrintJson({{"release_id", m->release_id}, {"format", o->format}, {"out", o->out}});
    }
    std::printf("release %s written as %s: %s\n", m->release_id.c_str(), o->format.c_str(),
                o->out.c_str());
  });
}

}  // namespace

void RegisterCommand_release_check(CLI::App& app) {
  CLI::App* parent = GetOrAddSubcommand(app, "release", "signed, versioned adapter releases");
  RegisterVerify(parent);
  RegisterInspect(parent);
  RegisterExport(parent);
}

}  // namespace fedlora::cli
