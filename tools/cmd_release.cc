// fedlora release create|sign: making signed adapter releases (docs/releases.md).
// verify, inspect and export are in cmd_release_check.cc; publish, promote, halt and rollback
// in cmd_release_rollout.cc.
#include <filesystem>
#include <limits>

#include "absl/strings/str_cat.h"
#include "cli_common.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/release.h"
#include "fedlora/io/model_identity.h"
#include "fedlora/io/release_folder.h"

namespace fedlora::cli {
namespace {

CLI::App* ReleaseParent(CLI::App& app) {
  return GetOrAddSubcommand(app, "release",
                            "signed, versioned adapter releases: create, sign, verify, inspect, "
                            "export, publish, promote, halt, rollback");
}

// Provenance from a `fedlora sim` summary.json (rounds, epsilon, delta), when given.
absl::Status ReadSummary(const std::string& path, ReleaseProvenance* p) {
  auto text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  auto j = nlohmann::json::parse(*text, nullptr, false);
  // "epsilon_observers" since the two epsilons were split; "epsilon" in older summaries.
  const char* key =
      j.is_object() && j.contains("epsilon_observers") ? "epsilon_observers" : "epsilon";
  if (j.is_discarded() || !j.contains("rounds_completed") || !j.contains(key) ||
      !j[key].is_number() || !j.contains("delta")) {
    return absl::InvalidArgumentError(absl::StrCat(
        path,
        " is not a `fedlora sim` summary.json (needs rounds_completed, epsilon_observers, "
        "delta)"));
  }
  p->rounds = j["rounds_completed"].get<int64_t>();
  p->epsilon = j[key].get<double>();
  if (j.contains("epsilon_coordinator")) {  // null: unbounded (central DP)
    const auto& ec = j["epsilon_coordinator"];
    p->epsilon_coordinator =
        ec.is_number() ? ec.get<double>() : std::numeric_limits<double>::infinity();
  }
  p->delta = j["delta"].get<double>();
  return absl::OkStatus();
}

void RegisterCreate(CLI::App* parent) {
  struct Opts {
    std::string adapter, base, key, out, segment = "global", release_id, summary;
    uint64_t version = 0;
    int64_t rounds = 0;
    double epsilon = 0, delta = 0, epsilon_coordinator = -1;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = parent->add_subcommand("create", "make a signed release folder from an adapter");
  cmd->footer(
      "Examples:\n"
      "  fedlora release create --adapter sim-out/global_adapter --base sim-out/base-model \\\n"
      "      --version 1 --key release.key --summary sim-out/summary.json --out rel-1\n"
      "The manifest records the base model's SHA-256, every file's SHA-256 and the training\n"
      "provenance; its canonical bytes are signed with Ed25519 (docs/releases.md).");
  cmd->add_option("--adapter", o->adapter, "PEFT adapter folder")->required();
  cmd->add_option("--base", o->base, "base model folder it was trained for (hashed)")->required();
  cmd->add_option("--version", o->version, "release version (must grow)")->required()->check(
      GreaterThan(0));
  cmd->add_option("--key", o->key, "release key (`fedlora keys new`)")->required();
  cmd->add_option("--out", o->out, "new release folder")->required();
  cmd->add_option("--segment", o->segment, "fleet segment it is for")->capture_default_str();
  cmd->add_option("--release-id", o->release_id, "id (default r<version>-<random hex>)");
  cmd->add_option("--summary", o->summary, "sim summary.json to take rounds/epsilon/delta from");
  cmd->add_option("--rounds", o->rounds, "training rounds (provenance)");
  cmd->add_option("--epsilon", o->epsilon,
                  "epsilon spent, against observers of released adapters (provenance)");
  cmd->add_option("--epsilon-coordinator", o->epsilon_coordinator,
                  "epsilon spent against the coordinator, worst device (provenance; optional)");
  cmd->add_option("--delta", o->delta, "delta (provenance)");
  cmd->add_flag("--json", o->json, "print the manifest as JSON");
  cmd->callback([o] {
    auto key = Ed25519Key::LoadPrivate(o->key);
    if (!key.ok()) return (void)Fail(key.status());
    auto base_sha = io::ModelSha256(o->base);
    if (!base_sha.ok()) return (void)Fail(base_sha.status());
    io::CreateReleaseOptions c;
    c.adapter_dir = o->adapter;
    c.base_model_sha256 = *base_sha;
    c.version = o->version;
    c.release_id = o->release_id;
    c.segment = o->segment;
    c.out_dir = o->out;
    c.provenance.rounds = o->rounds;
    c.provenance.epsilon = o->epsilon;
    c.provenance.delta = o->delta;
    if (o->epsilon_coordinator >= 0) c.provenance.epsilon_coordinator = o->epsilon_coordinator;
    if (!o->summary.empty()) {
      if (auto s = ReadSummary(o->summary, &c.provenance); !s.ok()) return (void)Fail(s);
    }
    auto m = io::CreateRelease(c, *key);
    if (!m.ok()) return (void)Fail(m.status());
    if (o->json) return PrintJson(ManifestToJson(*m));
    std::printf("release %s version %llu for base %s...\n  %zu files, signed by key %s\n  %s\n",
                m->release_id.c_str(), static_cast<unsigned long long>(m->version),
                m->base_model_sha256.substr(0, 16).c_str(), m->files.size(), m->key_id.c_str(),
                o->out.c_str());
  });
}

void RegisterSign(CLI::App* parent) {
  struct Opts {
    std::string dir, key;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = parent->add_subcommand("sign", "re-sign a release folder's manifest with a key");
  cmd->footer(
      "Examples:\n"
      "  fedlora release sign rel-7 --key release-2027.key   # key rotation: re-sign with the new key\n"
      "The files' hashes are checked first: only an intact release is re-signed.");
  cmd->add_option("dir", o->dir, "release folder")->required();
  cmd->add_option("--key", o->key, "release key")->required();
  cmd->add_flag("--json", o->json, "print the manifest as JSON");
  cmd->callback([o] {
    auto key = Ed25519Key::LoadPrivate(o->key);
    if (!key.ok()) return (void)Fail(key.status());
    auto m = io::ReadManifest(o->dir);
    if (!m.ok()) return (void)Fail(m.status());
    // Verify the files against the manifest under the signing key itself before signing.
    TrustStore self;
    self.Add(key->PublicRaw());
    if (auto s = SignManifest(*key, &*m); !s.ok()) return (void)Fail(s);
    const std::string tmp = o->dir + "/manifest.json";
    auto old = ReadFileToString(tmp);
    if (!old.ok()) return (void)Fail(old.status());
    if (auto s = WriteFileAtomic(tmp, ManifestToJson(*m).dump(2) + "\n"); !s.ok()) {
      return (void)Fail(s);
    }
    io::VerifyReleaseOptions vo;
    vo.base_model_sha256 = m->base_model_sha256;
    auto checked = io::VerifyRelease(o->dir, self, vo);
    if (!checked.ok()) {
      (void)WriteFileAtomic(tmp, *old);  // leave the folder as it was
      return (void)Fail(checked.status());
    }
    if (o->json) return PrintJson(ManifestToJson(*m));
    std::printf("release %s version %llu signed by key %s\n", m->release_id.c_str(),
                static_cast<unsigned long long>(m->version), m->key_id.c_str());
  });
}

}  // namespace

void RegisterCommand_release(CLI::App& app) {
  CLI::App* parent = ReleaseParent(app);
  RegisterCreate(parent);
  RegisterSign(parent);
}

}  // namespace fedlora::cli
