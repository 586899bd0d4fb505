// fedlora device install-release DIR --state S --model M --trusted PUB... [--rollback FILE]
// [--holdout FILE --margin M]: verify and install a release atomically, keep the previous one,
// and fall back to it when the new adapter scores worse on the user's own held-back text.
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "cli_common.h"
#include "fedlora/adapters/lora_adapter.h"
#include "fedlora/common/file_util.h"
#include "fedlora/device/evaluate.h"
#include "fedlora/device/release_install.h"
#include "fedlora/device/runtime.h"
#include "fedlora/io/model_identity.h"
#include "text_input.h"

namespace fedlora::cli {
namespace {

// The keyboard metrics of the base with the release at `dir` (the bare base when dir is empty).
absl::StatusOr<device::TextMetrics> Score(device::Runtime& rt, const std::string& dir,
                             const std::vector<std::string>& texts) {
  std::optional<adapters::LoraAdapter> adapter;
  if (!dir.empty()) {
    auto a = adapters::LoraAdapter::LoadPeft(dir + "/adapter");
    if (!a.ok()) return a.status();
    adapter.emplace(std::move(*a));
    if (auto s = adapter->Attach(*rt.model); !s.ok()) return s;
  }
  const device::TextMetrics m = device::EvaluateTexts(*rt.model, *rt.tokenizer, texts);
  if (adapter) adapter->Detach(*rt.model);
  return m;
}

}  // namespace

void RegisterCommand_device_release(CLI::App& app) {
  auto* parent = GetOrAddSubcommand(app, "device", "a device (phone): enrol, run rounds, install releases");
  struct Opts {
    std::string dir, state, model, rollback, holdout;
    std::vector<std::string> trusted, revoked;
    double margin = 0.01, nll_margin = 0.1;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = parent->add_subcommand(
      "install-release", "verify and install a signed release, with a local health gate");
  cmd->footer(
      "Examples:\n"
      "  fedlora device install-release rel-2 --state dev1 --model base --trusted release.key.pub\n"
      "  fedlora device install-release rel-2 --state dev1 --model base --trusted release.key.pub \\\n"
      "      --holdout my-recent-text.txt --margin 0.01\n"
      "Nothing is applied unless the key is trusted, the signature verifies, the base hash is this\n"
      "device's, the version is newer (or --rollback carries the coordinator's signed instruction)\n"
      "and every file is intact. With --holdout, the new release must not lower next-word top-3 on\n"
      "that text by more than --margin nor raise its loss by more than --nll-margin, or the device\n"
      "goes back to its previous release; the text never leaves the device.");
  cmd->add_option("dir", o->dir, "release folder")->required();
  cmd->add_option("--state", o->state, "device state folder")->required();
  cmd->add_option("--model", o->model, "the base model this device runs")->required();
  cmd->add_option("--trusted", o->trusted, "trusted public keys (KEY.pub)")->required();
  cmd->add_option("--revoked", o->revoked, "revoked key ids");
  cmd->add_option("--rollback", o->rollback, "signed rollback instruction (for a downgrade)");
  cmd->add_option("--holdout", o->holdout, "the user's held-back text for the health gate");
  cmd->add_option("--margin", o->margin, "largest tolerated drop of next-word top-3")
      ->capture_default_str()->check(AtLeast(0));
  cmd->add_option("--nll-margin", o->nll_margin,
                  "largest tolerated rise of the mean next-token loss (nats)")
      ->capture_default_str()->check(AtLeast(0));
  cmd->add_flag("--json", o->json, "print one JSON object");
  cmd->callback([o] {
    TrustStore trust;
    if (auto s = trust.AddFiles(o->trusted); !s.ok()) return (void)Fail(s);
    for (const auto& id : o->revoked) trust.Revoke(id);
    auto base_sha = io::ModelSha256(o->model);
    if (!base_sha.ok()) return (void)Fail(base_sha.status());
    std::optional<RollbackInstruction> rollback;
    if (!o->rollback.empty()) {
      auto text = ReadFileToString(o->rollback);
      if (!text.ok()) return (void)Fail(text.status());
      auto r = RollbackFromJson(nlohmann::json::parse(*text, nullptr, false));
      if (!r.ok()) return (void)Fail(r.status());
      rollback = *r;
    }
    if (auto s = MakeDirs(o->state); !s.ok()) return (void)Fail(s);
    auto before = device::ReadReleaseState(o->state);
    if (!before.ok()) return (void)Fail(before.status());
    auto installed = device::InstallRelease(o->state, o->dir, trust, *base_sha, rollback);
    if (!installed.ok()) return (void)Fail(installed.status());
    nlohmann::json out = {{"installed", installed->version},
                          {"release_id", installed->release_id},
                          {"previous", before->current ? before->current->version : 0}};
    std::string line = absl::StrCat("installed release ", installed->release_id, " (version ",
                                    installed->version, ")");
    if (!o->holdout.empty()) {
      auto texts = ReadTextLines({o->holdout});
      if (!texts.ok()) return (void)Fail(texts.status());
      auto rt = device::LoadRuntime(o->model);
      if (!rt.ok()) return (void)Fail(rt.status());
      const std::string old_dir = before->current ? before->current->dir : "";
      auto old_score = Score(*rt, old_dir, *texts);
      auto new_score = old_score.ok() ? Score(*rt, installed->dir, *texts) : old_score;
      if (!new_score.ok()) return (void)Fail(new_score.status());
      const double top3_before = old_score->next_word_top3(), top3_after = new_score->next_word_top3();
      const double nll_before = old_score->mean_nll(), nll_after = new_score->mean_nll();
      out["holdout_next_word_top3_before"] = top3_before;
      out["holdout_next_word_top3_after"] = top3_after;
      out["holdout_nll_before"] = nll_before;
      out["holdout_nll_after"] = nll_after;
      // The keyboard metric is the gate; the loss catches what a short held-back text's top-3
      // is too coarse to show.
      const bool worse =
          top3_after < top3_before - o->margin || nll_after > nll_before + o->nll_margin;
      out["health"] = worse ? "fell back" : "ok";
      if (worse && before->current) {
        auto back = device::RevertToPrevious(o->state);
        if (!back.ok()) return (void)Fail(back.status());
        out["running"] = back->version;
        line = absl::StrCat("release ", installed->release_id, " scored worse on the held-back "
                            "text (next-word top-3 ", top3_before, " -> ", top3_after,
                            ", loss ", nll_before, " -> ", nll_after, " nats): fell back to "
                            "version ", back->version);
      } else {
        out["running"] = installed->version;
        absl::StrAppend(&line, "; health gate ok: next-word top-3 ", top3_before, " -> ",
                        top3_after, ", loss ", nll_before, " -> ", nll_after, " nats");
      }
    } else {
      out["running"] = installed->version;
    }
    if (o->json) return PrintJson(out);
    std::printf("%s\n", line.c_str());
  });
}

}  // namespace fedlora::cli
