// fedlora release publish|promote|halt|rollback: the operator's staged rollout of signed
// releases through a coordinator's state folder (docs/releases.md, "Rollout"). The commands
// write the coordinator's store directly, also while it runs (SQLite WAL); the running
// coordinator answers the next device's GetRelease from the new state.
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "cli_common.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/release.h"
#include "fedlora/coordinator/state_folder.h"
#include "fedlora/coordinator/coordinator_config.h"
#include "fedlora/coordinator/release_rollout.h"
#include "fedlora/coordinator/store.h"
#include "fedlora/io/release_bundle.h"
#include "fedlora/io/release_folder.h"

namespace fedlora::cli {
namespace {

namespace fs = std::filesystem;
using coordinator::ReleaseRecord;

// The base model the coordinator at `state` serves ("" when its config names none).
absl::StatusOr<std::string> CoordinatorBase(const std::string& state) {
  auto text = ReadFileToString(state + "/coordinator.json");
  if (!text.ok()) {
    return absl::NotFoundError(absl::StrCat(
        state, "/coordinator.json cannot be read (hint: --state is the folder `fedlora "
        "coordinator init` made)"));
  }
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded()) return absl::InvalidArgumentError(state + "/coordinator.json is not JSON");
  auto o = coordinator::CoordinatorOptionsFromJson(j);
  if (!o.ok()) return o.status();
  return o->base_model_sha256;
}

// The release to act on: --version, else the segment's rolling or halted one.
absl::StatusOr<ReleaseRecord> Target(const std::vector<ReleaseRecord>& all, uint64_t version,
                                     const std::string& segment) {
  if (version == 0) return coordinator::CurrentCandidate(all, segment);
  for (const auto& r : all) {
    if (r.version == version) return r;
  }
  return absl::NotFoundError(absl::StrCat("no release version ", version, " is published "
                                          "(hint: `fedlora coordinator status` lists them)"));
}

nlohmann::json RecordJson(const ReleaseRecord& r) {
  return {{"version", r.version}, {"release_id", r.release_id}, {"segment", r.segment},
          {"state", r.state},     {"percent", r.percent},       {"bundle_bytes", r.bundle_bytes}};
}

void Report(bool json, const ReleaseRecord& r, const std::string& what) {
  if (json) return PrintJson(RecordJson(r));
  std::printf("%s release %s (version %llu, segment %s): %s at %g%%\n", what.c_str(),
              r.release_id.c_str(), static_cast<unsigned long long>(r.version),
              r.segment.c_str(), r.state.c_str(), r.percent);
}

struct StateOpts {
  std::string state, segment = "global";
  uint64_t version = 0;
  bool json = false;
};

void AddStateFlags(CLI::App* cmd, StateOpts* o, bool version_flag) {
  cmd->add_option("--state", o->state, "the coordinator's state folder")->required();
  if (version_flag) {
    cmd->add_option("--version", o->version,
                    "release version (default: the segment's rolling or halted one)");
    cmd->add_option("--segment", o->segment, "fleet segment")->capture_default_str();
  }
  cmd->add_flag("--json", o->json, "print the release's rollout as JSON");
}

// Opens the store, finds the release (--version, else the live one), applies `step` and
// records the result as `action`.
void ApplyStep(const StateOpts& o, const std::string& action, const std::string& verb,
               const std::function<absl::StatusOr<ReleaseRecord>(const ReleaseRecord&)>& step) {
  auto store = coordinator::OpenStateStore(o.state);
  if (!store.ok()) return (void)Fail(store.status());
  auto all = (*store)->ListReleases();
  if (!all.ok()) return (void)Fail(all.status());
  auto target = Target(*all, o.version, o.segment);
  if (!target.ok()) return (void)Fail(target.status());
  auto next = step(*target);
  if (!next.ok()) return (void)Fail(next.status());
  if (auto s = (*store)->UpdateRelease(*next, action); !s.ok()) return (void)Fail(s);
  Report(o.json, *next, verb);
}

void RegisterPublish(CLI::App* parent) {
  struct Opts : StateOpts {
    std::string dir;
    std::vector<std::string> trusted;
    double percent = 0;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = parent->add_subcommand("publish", "give a coordinator a signed release to roll out");
  cmd->footer(
      "Examples:\n"
      "  fedlora release publish rel-7 --state coord --trusted release.key.pub --percent 5\n"
      "The release is verified first (trusted key, signature, the coordinator's base model,\n"
      "every file's hash) and stored as one bundle. Devices whose rollout hash falls under\n"
      "--percent get it on their next `fedlora device update`; raise it with `release promote`.");
  cmd->add_option("dir", o->dir, "release folder (`fedlora release create`)")->required();
  AddStateFlags(cmd, o.get(), false);
  cmd->add_option("--trusted", o->trusted, "release keys the devices trust (KEY.pub)")->required();
  cmd->add_option("--percent", o->percent, "share of the fleet to offer it to at once")
      ->capture_default_str()->check(CLI::Range(0.0, 100.0));
  cmd->callback([o] {
    TrustStore trust;
    if (auto s = trust.AddFiles(o->trusted); !s.ok()) return (void)Fail(s);
    auto base = CoordinatorBase(o->state);
    if (!base.ok()) return (void)Fail(base.status());
    auto bundle = io::PackReleaseBundle(o->dir);
    if (!bundle.ok()) return (void)Fail(bundle.status());
    // Verify what will be served: the bundle, unpacked, checked like a device checks it.
    const std::string check = absl::StrCat(o->state, "/.publish-check-", getpid());
    std::error_code ec;
    fs::remove_all(check, ec);
    absl::StatusOr<ReleaseManifest> m = io::ReadManifest(o->dir);
    if (m.ok()) {
      io::VerifyReleaseOptions vo;
      vo.base_model_sha256 = base->empty() ? m->base_model_sha256 : *base;
      absl::Status unpacked = io::UnpackReleaseBundle(*bundle, check);
      m = unpacked.ok() ? io::VerifyRelease(check, trust, vo) : unpacked;
    }
    fs::remove_all(check, ec);
    if (!m.ok()) return (void)Fail(m.status());
    auto store = coordinator::OpenStateStore(o->state);
    if (!store.ok()) return (void)Fail(store.status());
    ReleaseRecord r;
    r.version = m->version;
    r.release_id = m->release_id;
    r.segment = m->segment;
    r.base_model_sha256 = m->base_model_sha256;
    r.manifest_json = ManifestToJson(*m).dump();
    r.percent = o->percent;
    r.state = o->percent >= 100 ? "complete" : "rolling";
    if (auto s = (*store)->PublishRelease(r, *bundle); !s.ok()) return (void)Fail(s);
    r.bundle_bytes = bundle->size();
    Report(o->json, r, "published");
  });
}

void RegisterPromote(CLI::App* parent) {
  struct Opts : StateOpts {
    double percent = 0;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = parent->add_subcommand("promote", "offer a release to a larger share of the fleet");
  cmd->footer(
      "Examples:\n  fedlora release promote --state coord --percent 25\n"
      "  fedlora release promote --state coord --percent 100   # complete: the new stable release\n"
      "A rollout only grows; a halted release resumes when promoted.");
  AddStateFlags(cmd, o.get(), true);
  cmd->add_option("--percent", o->percent, "new share of the fleet, in (0, 100]")->required();
  cmd->callback([o] {
    ApplyStep(*o, "promote", "promoted",
              [&](const ReleaseRecord& r) { return coordinator::Promote(r, o->percent); });
  });
}

void RegisterHalt(CLI::App* parent) {
  auto o = std::make_shared<StateOpts>();
  auto* cmd = parent->add_subcommand("halt", "stop a rollout from reaching more devices");
  cmd->footer(
      "Example:\n  fedlora release halt --state coord\n"
      "Devices that already run it keep it; `release promote` resumes, `release rollback` takes\n"
      "it back.");
  AddStateFlags(cmd, o.get(), true);
  cmd->callback([o] { ApplyStep(*o, "halt", "halted", coordinator::Halt); });
}

// Signs the instruction from `from` back to `to` (both published or folders).
absl::StatusOr<RollbackInstruction> SignedRollback(const Ed25519Key& key, uint64_t from,
                                                   const ReleaseManifest& to) {
  if (to.version >= from) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the release to go back to is version ", to.version, ", not older than ", from));
  }
  RollbackInstruction r;
  r.from_version = from;
  r.to_version = to.version;
  r.to_release_id = to.release_id;
  r.base_model_sha256 = to.base_model_sha256;
  r.created = absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone());
  if (auto s = SignRollback(key, &r); !s.ok()) return s;
  return r;
}

void RegisterRollback(CLI::App* parent) {
  struct Opts : StateOpts {
    std::string to, key, out;
    uint64_t from = 0;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = parent->add_subcommand(
      "rollback", "take a release back: sign the instruction that lets devices downgrade");
  cmd->footer(
      "Examples:\n"
      "  fedlora release rollback --state coord --key release.key\n"
      "      (the coordinator's rolling, halted or latest release goes back to the complete one\n"
      "       before it; devices that run it are sent that one with the signed instruction)\n"
      "  fedlora release rollback --from 8 --to rel-7 --key release.key --out rollback-8-7.json\n"
      "      (an instruction file for `fedlora device install-release rel-7 --rollback FILE`)\n"
      "Devices refuse any downgrade without such an instruction.");
  cmd->add_option("--state", o->state, "the coordinator's state folder");
  cmd->add_option("--version", o->version,
                  "with --state: the release to take back (default: the segment's rolling or "
                  "halted one, else its latest)");
  cmd->add_option("--segment", o->segment, "with --state: fleet segment")->capture_default_str();
  cmd->add_option("--from", o->from, "without --state: the version devices run now");
  cmd->add_option("--to", o->to, "without --state: release folder to go back to");
  cmd->add_option("--key", o->key, "release key")->required();
  cmd->add_option("--out", o->out, "instruction file to write");
  cmd->add_flag("--json", o->json, "print the instruction as JSON");
  cmd->callback([o] {
    auto key = Ed25519Key::LoadPrivate(o->key);
    if (!key.ok()) return (void)Fail(key.status());
    absl::StatusOr<RollbackInstruction> r = absl::UnknownError("");
    std::string applied;
    if (!o->state.empty()) {
      auto store = coordinator::OpenStateStore(o->state);
      if (!store.ok()) return (void)Fail(store.status());
      auto all = (*store)->ListReleases();
      if (!all.ok()) return (void)Fail(all.status());
      auto target = Target(*all, o->version, o->segment);
      if (!target.ok() && o->version == 0) {  // no live one: the segment's latest
        for (const auto& rec : *all) {
          if (rec.segment == o->segment && rec.state == "complete") target = rec;
        }
      }
      if (!target.ok()) return (void)Fail(target.status());
      auto prev = coordinator::PreviousComplete(*all, target->segment, target->version);
      if (!prev.ok()) {
        return (void)Fail(absl::FailedPreconditionError(absl::StrCat(
            "release version ", target->version, " has no earlier complete release to go back "
            "to (hint: `fedlora release halt --state ", o->state, "` stops it instead)")));
      }
      auto to = ManifestFromJson(nlohmann::json::parse(prev->manifest_json, nullptr, false));
      if (!to.ok()) return (void)Fail(to.status());
      r = SignedRollback(*key, target->version, *to);
      if (!r.ok()) return (void)Fail(r.status());
      auto next = coordinator::RollBack(*target, *all, RollbackToJson(*r).dump());
      if (!next.ok()) return (void)Fail(next.status());
      if (auto s = (*store)->UpdateRelease(*next, "rollback"); !s.ok()) return (void)Fail(s);
      applied = absl::StrCat(" (recorded in ", o->state, ": devices running version ",
                             r->from_version, " are sent version ", r->to_version, ")");
    } else {
      if (o->to.empty() || o->from == 0 || o->out.empty()) {
        return (void)Fail(absl::InvalidArgumentError(
            "release rollback: give --state (a coordinator), or --from, --to and --out (a file)"));
      }
      auto m = io::ReadManifest(o->to);
      if (!m.ok()) return (void)Fail(m.status());
      r = SignedRollback(*key, o->from, *m);
      if (!r.ok()) return (void)Fail(r.status());
    }
    const nlohmann::json j = RollbackToJson(*r);
    if (!o->out.empty()) {
      if (auto s = WriteFileAtomic(o->out, j.dump(2) + "\n"); !s.ok()) return (void)Fail(s);
    }
    if (o->json) return PrintJson(j);
    std::printf("rollback %llu -> %llu (%s) signed by key %s%s%s\n",
                static_cast<unsigned long long>(r->from_version),
                static_cast<unsigned long long>(r->to_version), r->to_release_id.c_str(),
                r->key_id.c_str(), o->out.empty() ? "" : (": " + o->out).c_str(),
                applied.c_str());
  });
}

}  // namespace

void RegisterCommand_release_rollout(CLI::App& app) {
  CLI::App* parent = GetOrAddSubcommand(app, "release",
                                        "signed, versioned adapter releases: create, sign, "
                                        "verify, inspect, export, publish, promote, halt, "
                                        "rollback");
  RegisterPublish(parent);
  RegisterPromote(parent);
  RegisterHalt(parent);
  RegisterRollback(parent);
}

}  // namespace fedlora::cli
