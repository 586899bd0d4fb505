// fedlora device install-release DIR --state S --model M --trusted PUB... [--rollback FILE]
// [--holdout FILE --margin M]: verify and install a release atomically, keep the previous one,
// and fall back to it when the new adapter scores worse on the user's own held-back text.
// fedlora device update: the same, for the release the coordinator's staged rollout assigns.
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "cli_common.h"
#include "device_flags.h"
#include "fedlora/common/file_util.h"
#include "fedlora/device/device_loop.h"
#include "fedlora/device/release_health.h"
#include "fedlora/device/release_install.h"
#include "fedlora/device/release_update.h"
#include "fedlora/device/runtime.h"
#include "fedlora/io/model_identity.h"
#include "text_input.h"

namespace fedlora::cli {
namespace {

// Loads trusted keys (KEY.pub files) and revoked key ids.
absl::StatusOr<TrustStore> LoadTrust(const std::vector<std::string>& trusted,
                                     const std::vector<std::string>& revoked) {
  TrustStore trust;
  if (auto s = trust.AddFiles(trusted); !s.ok()) return s;
  for (const auto& id : revoked) trust.Revoke(id);
  return trust;
}

void AddTrustFlags(CLI::App* cmd, std::vector<std::string>* trusted,
                   std::vector<std::string>* revoked) {
  cmd->add_option("--trusted", *trusted, "trusted public keys (KEY.pub)")->required();
  cmd->add_option("--revoked", *revoked, "revoked key ids");
}

void AddGateFlags(CLI::App* cmd, std::string* holdout, device::HealthGateOptions* gate) {
  cmd->add_option("--holdout", *holdout, "the user's held-back text for the health gate");
  cmd->add_option("--margin", gate->top3_margin, "largest tolerated drop of next-word top-3")
      ->capture_default_str()->check(AtLeast(0));
  cmd->add_option("--nll-margin", gate->nll_margin,
                  "largest tolerated rise of the mean next-token loss (nats)")
      ->capture_default_str()->check(AtLeast(0));
}

void AddHealthJson(const device::HealthReport& h, nlohmann::json* out) {
  (*out)["holdout_next_word_top3_before"] = h.before.next_word_top3();
  (*out)["holdout_next_word_top3_after"] = h.after.next_word_top3();
  (*out)["holdout_nll_before"] = h.before.mean_nll();
  (*out)["holdout_nll_after"] = h.after.mean_nll();
}

std::string HealthLine(const device::HealthReport& h) {
  return absl::StrCat("next-word top-3 ", h.before.next_word_top3(), " -> ",
                      h.after.next_word_top3(), ", loss ", h.before.mean_nll(), " -> ",
                      h.after.mean_nll(), " nats");
}

void RegisterUpdate(CLI::App* parent) {
  struct Opts : DeviceConnection {
    std::string model, holdout, segment = "global";
    std::vector<std::string> trusted, revoked;
    device::HealthGateOptions gate;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = parent->add_subcommand(
      "update", "ask the coordinator which release to run; download, verify, install it");
  cmd->footer(
      "Example:\n  fedlora device update --coordinator localhost:50051 --ca coord/tls/ca.pem \\\n"
      "      --state phone1 --model M --trusted release.key.pub --holdout my-recent-text.txt\n"
      "The device reports the release version it runs (nothing else) and gets the one the\n"
      "operator's staged rollout assigns it. Nothing is applied unless every check of\n"
      "`device install-release` passes; with --holdout a release that scores worse on the\n"
      "user's own text is replaced by the previous one again, and the coordinator is told so.");
  AddConnectionFlags(cmd, o.get());
  cmd->add_option("--model", o->model, "the base model this device runs")->required();
  cmd->add_option("--segment", o->segment, "fleet segment")->capture_default_str();
  AddTrustFlags(cmd, &o->trusted, &o->revoked);
  AddGateFlags(cmd, &o->holdout, &o->gate);
  cmd->callback([o] {
    auto trust = LoadTrust(o->trusted, o->revoked);
    if (!trust.ok()) return (void)Fail(trust.status());
    auto identity = device::LoadIdentity(o->state);
    if (!identity.ok()) return (void)Fail(identity.status());
    auto base_sha = io::ModelSha256(o->model);
    if (!base_sha.ok()) return (void)Fail(base_sha.status());
    auto channel = DeviceChannel(*o);
    if (!channel.ok()) return (void)Fail(channel.status());
    device::CoordinatorClient client(*channel, &identity->key, identity->device_id);
    device::ReleaseUpdateOptions uo;
    uo.state_dir = o->state;
    uo.base_model_sha256 = *base_sha;
    uo.segment = o->segment;
    uo.trust = &*trust;
    std::optional<device::HealthReport> health;
    std::vector<std::string> texts;
    std::optional<device::Runtime> rt;
    if (!o->holdout.empty()) {
      auto lines = ReadTextLines({o->holdout});
      if (!lines.ok()) return (void)Fail(lines.status());
      texts = std::move(*lines);
      uo.health_gate = [&](const std::string& prev, const std::string& next)
          -> absl::StatusOr<bool> {
        if (!rt) {
          auto loaded = device::LoadRuntime(o->model);
          if (!loaded.ok()) return loaded.status();
          rt.emplace(std::move(*loaded));
        }
        auto h = device::CheckReleaseHealth(*rt, prev, next, texts, o->gate);
        if (!h.ok()) return h.status();
        health = *h;
        return h->healthy;
      };
    }
    auto r = device::UpdateRelease(client, uo);
    if (!r.ok()) return (void)Fail(r.status());
    nlohmann::json out = {{"device_id", identity->device_id}, {"action", r->action},
                          {"offered", r->offered_version}, {"running", r->running_version},
                          {"previous", r->previous_version}, {"detail", r->detail}};
    if (health) AddHealthJson(*health, &out);
    if (o->json) return PrintJson(out);
    std::string line = absl::StrCat(r->action, ": running release version ", r->running_version,
                                    " (", r->detail, ")");
    if (health) absl::StrAppend(&line, "; health gate: ", HealthLine(*health));
    std::printf("%s\n", line.c_str());
  });
}

}  // namespace

void RegisterCommand_device_release(CLI::App& app) {
  auto* parent = GetOrAddSubcommand(app, "device", "a device (phone): enrol, run rounds, install releases");
  struct Opts {
    std::string dir, state, model, rollback, holdout;
    std::vector<std::string> trusted, revoked;
    device::HealthGateOptions gate;
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
  AddTrustFlags(cmd, &o->trusted, &o->revoked);
  cmd->add_option("--rollback", o->rollback, "signed rollback instruction (for a downgrade)");
  AddGateFlags(cmd, &o->holdout, &o->gate);
  cmd->add_flag("--json", o->json, "print one JSON object");
  cmd->callback([o] {
    auto trust = LoadTrust(o->trusted, o->revoked);
    if (!trust.ok()) return (void)Fail(trust.status());
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
    auto installed = device::InstallRelease(o->state, o->dir, *trust, *base_sha, rollback);
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
      auto h = device::CheckReleaseHealth(*rt, old_dir, installed->dir, *texts, o->gate);
      if (!h.ok()) return (void)Fail(h.status());
      AddHealthJson(*h, &out);
      out["health"] = h->healthy ? "ok" : "fell back";
      if (!h->healthy && before->current) {
        auto back = device::RevertToPrevious(o->state);
        if (!back.ok()) return (void)Fail(back.status());
        out["running"] = back->version;
        line = absl::StrCat("release ", installed->release_id, " scored worse on the held-back "
                            "text (", HealthLine(*h), "): fell back to version ", back->version);
      } else {
        out["running"] = installed->version;
        absl::StrAppend(&line, "; health gate ok: ", HealthLine(*h));
      }
    } else {
      out["running"] = installed->version;
    }
    if (o->json) return PrintJson(out);
    std::printf("%s\n", line.c_str());
  });
  RegisterUpdate(parent);
}

}  // namespace fedlora::cli
