// fedlora release timestamp: the operator signs how fresh a segment's releases are (the newest
// complete version, an expiry), and the coordinator serves it with every release answer
// (common/release_timestamp.h, docs/releases.md "Freshness"). Re-run it before it expires,
// e.g. daily from cron with --days 7; a device refuses expired or older timestamps.
#include <ctime>
#include <memory>

#include "absl/strings/str_cat.h"
#include "cli_common.h"
#include "fedlora/common/ed25519.h"
#include "fedlora/common/release_timestamp.h"
#include "fedlora/coordinator/state_folder.h"
#include "fedlora/coordinator/store.h"

namespace fedlora::cli {
namespace {

struct TimestampOptions {
  std::string state;
  std::string key;
  std::string segment = "global";
  double days = 7;
  bool json = false;
};

void RunTimestamp(const TimestampOptions& o) {
  if (!(o.days > 0) || o.days > 366) {
    return (void)Fail(absl::InvalidArgumentError(
        "--days must be in (0, 366] (hint: short lives bound how long a coordinator can hide "
        "a release; re-sign daily)"));
  }
  auto key = Ed25519Key::LoadPrivate(o.key);
  if (!key.ok()) return (void)Fail(key.status());
  auto store = coordinator::OpenStateStore(o.state);
  if (!store.ok()) return (void)Fail(store.status());
  auto all = (*store)->ListReleases();
  if (!all.ok()) return (void)Fail(all.status());
  ReleaseTimestamp t;
  t.segment = o.segment;
  for (const auto& r : *all) {
    if (r.segment != o.segment) continue;
    if (t.base_model_sha256.empty()) t.base_model_sha256 = r.base_model_sha256;
    if (r.state == "complete" && r.version >= t.newest_version) {
      t.newest_version = r.version;
      t.base_model_sha256 = r.base_model_sha256;
    }
  }
  if (t.base_model_sha256.empty()) {
    return (void)Fail(absl::FailedPreconditionError(absl::StrCat(
        "segment \"", o.segment, "\" has no release (hint: `fedlora release publish` first)")));
  }
  t.issued_unix = static_cast<int64_t>(std::time(nullptr));
  t.expires_unix = t.issued_unix + static_cast<int64_t>(o.days * 86400);
  if (auto s = SignTimestamp(*key, &t); !s.ok()) return (void)Fail(s);
  const nlohmann::json j = TimestampToJson(t);
  if (auto s = (*store)->PutMeta("release_timestamp/" + o.segment, j.dump()); !s.ok()) {
    return (void)Fail(s);
  }
  if (o.json) return PrintJson(j);
  std::printf("signed: segment %s, newest version %llu, expires in %.1f days (unix %lld)\n",
              t.segment.c_str(), static_cast<unsigned long long>(t.newest_version), o.days,
              static_cast<long long>(t.expires_unix));
}

}  // namespace

void RegisterCommand_release_timestamp(CLI::App& app) {
  CLI::App* parent = GetOrAddSubcommand(app, "release", "signed, versioned adapter releases");
  auto o = std::make_shared<TimestampOptions>();
  auto* cmd = parent->add_subcommand(
      "timestamp", "sign how fresh a segment's releases are (served to devices; expires)");
  cmd->footer(
      "Examples:\n  fedlora release timestamp --state coord --key op.key --days 7   # daily, "
      "from cron\n  fedlora release timestamp --state coord --key op.key --segment beta\n");
  cmd->add_option("--state", o->state, "the coordinator's state folder")->required();
  cmd->add_option("--key", o->key, "release key (devices trust its KEY.pub)")->required();
  cmd->add_option("--segment", o->segment, "fleet segment")->capture_default_str();
  cmd->add_option("--days", o->days, "lifetime in days")->capture_default_str();
  cmd->add_flag("--json", o->json, "print the signed timestamp as JSON");
  cmd->callback([o] { RunTimestamp(*o); });
}

}  // namespace fedlora::cli
