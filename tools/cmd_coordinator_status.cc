// fedlora coordinator status|tokens|revoke --state DIR: the operator's view of a run (works
// while the coordinator runs: SQLite WAL readers do not block it).
#include <algorithm>
#include <cstdio>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli_common.h"
#include "fedlora/common/encoding.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/private_file.h"
#include "fedlora/common/random.h"
#include "fedlora/coordinator/leader_lease.h"
#include "fedlora/coordinator/process_status.h"
#include "fedlora/coordinator/run_epsilons.h"
#include "fedlora/coordinator/state_folder.h"
#include "fedlora/coordinator/store.h"

namespace fedlora::cli {
namespace {

// The population's delta: pinned in the store, or coordinator.json's for an older folder.
absl::StatusOr<double> RunDelta(const coordinator::Store& store, const std::string& state) {
  if (auto d = coordinator::PinnedDelta(store); d.ok()) return *d;
  auto text = ReadFileToString(state + "/coordinator.json");
  if (!text.ok()) return text.status();
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.contains("delta") || !j["delta"].is_number()) {
    return absl::InvalidArgumentError(state + "/coordinator.json has no delta");
  }
  return j["delta"].get<double>();
}

absl::StatusOr<nlohmann::json> Status(coordinator::Store& store, const std::string& state,
                                      int last) {
  auto rounds = store.ListRounds();
  if (!rounds.ok()) return rounds.status();
  auto versions = store.ListAdapterVersions();
  if (!versions.ok()) return versions.status();
  auto devices = store.ListDevices();
  if (!devices.ok()) return devices.status();
  auto charges = store.Charges();
  if (!charges.ok()) return charges.status();
  auto counts = store.ParticipationCounts();
  if (!counts.ok()) return counts.status();
  auto tokens = store.CountUnusedTokens();
  if (!tokens.ok()) return tokens.status();
  auto releases = store.ListReleases();
  if (!releases.ok()) return releases.status();
  auto events = store.ListReleaseEvents();
  if (!events.ok()) return events.status();
  auto reports = store.ListDeviceReleases();
  if (!reports.ok()) return reports.status();
  auto delta = RunDelta(store, state);
  if (!delta.ok()) return delta.status();
  auto eps = coordinator::ComputeRunEpsilons(store, *delta);
  if (!eps.ok()) return eps.status();
  int committed = 0, aborted = 0, revoked = 0;
  nlohmann::json rs = nlohmann::json::array();
  for (const auto& r : *rounds) {
    committed += r.state == "committed";
    aborted += r.state == "aborted";
  }
  for (size_t i = rounds->size() > size_t(last) ? rounds->size() - last : 0; i < rounds->size();
       ++i) {
    const auto& r = (*rounds)[i];
    // No sample size or number summed: both are private (a committed round summed at least
    // the minimum the noise is calibrated for; that is all the operator may know).
    rs.push_back({{"round", r.round},
                  {"state", r.state},
                  {"phase", r.phase},
                  {"charged", r.charged},
                  {"epsilon_after", r.epsilon_after},
                  {"abort_reason", r.abort_reason}});
  }
  for (const auto& d : *devices) revoked += d.revoked;
  // Participation per enrolled device (0 for those never selected).
  std::vector<int> part;
  for (const auto& d : *devices) {
    auto it = counts->find(d.device_id);
    part.push_back(it == counts->end() ? 0 : it->second);
  }
  std::sort(part.begin(), part.end());
  auto pct = [&](double p) {
    return part.empty() ? 0 : part[std::min(part.size() - 1, size_t(p * (part.size() - 1) + 0.5))];
  };
  nlohmann::json vs = nlohmann::json::array();
  for (const auto& v : *versions) {
    vs.push_back(
        {{"version", v.version}, {"round", v.round}, {"sha256", v.sha256}, {"bytes", v.bytes}});
  }
  // Releases: rollout state, and what devices last reported running (versions only).
  std::map<uint64_t, int> running, fell_back;
  for (const auto& rep : *reports) {
    running[rep.running_version]++;
    if (rep.fell_back_from) fell_back[rep.fell_back_from]++;
  }
  nlohmann::json rel = nlohmann::json::array();
  for (const auto& r : *releases) {
    nlohmann::json ev = nlohmann::json::array();
    for (const auto& e : *events) {
      if (e.version == r.version) {
        ev.push_back({{"action", e.action}, {"percent", e.percent}, {"unix", e.unix}});
      }
    }
    rel.push_back({{"version", r.version},
                   {"release_id", r.release_id},
                   {"segment", r.segment},
                   {"state", r.state},
                   {"percent", r.percent},
                   {"bundle_bytes", r.bundle_bytes},
                   {"devices_running", running.count(r.version) ? running[r.version] : 0},
                   {"devices_fell_back", fell_back.count(r.version) ? fell_back[r.version] : 0},
                   {"events", ev}});
  }
  return nlohmann::json{
      {"releases", rel},
      {"devices_reporting_releases", reports->size()},
      {"devices_running_no_release", running.count(0) ? running[0] : 0},
      {"rounds_committed", committed},
      {"rounds_aborted", aborted},
      {"rounds", rs},
      {"adapter_versions", vs},
      {"devices", devices->size()},
      {"devices_revoked", revoked},
      {"unused_tokens", *tokens},
      // The two epsilons, each saying against whom it holds (docs/privacy.md, "Threat model").
      {"privacy", eps->ToJson()},
      {"rounds_charged", charges->size()},
      {"participation_p50", pct(0.5)},
      {"participation_p90", pct(0.9)},
      {"participation_max", part.empty() ? 0 : part.back()},
  };
}

// Multi-host folders: who leads (the lease row: holder, epoch, expiry on the database clock).
// {"store": "sqlite"} for a single-host folder; "lease": null before anyone led.
// Every registered process with its health (process_status.h); the lease holder's row is
// marked "holds_lease".
absl::StatusOr<nlohmann::json> ProcessesJson(const std::string& conninfo,
                                             const std::string& lease_holder) {
  auto registry = coordinator::OpenProcessRegistry(conninfo);
  if (!registry.ok()) return registry.status();
  auto rows = (*registry)->List();
  if (!rows.ok()) return rows.status();
  const coordinator::ProcessHealthOptions ho;
  nlohmann::json out = nlohmann::json::array();
  for (const auto& h : coordinator::AssessProcesses(*rows, ho)) {
    const auto& r = h.process.record;
    out.push_back({{"id", r.id},
                   {"role", r.role},
                   {"address", r.address},
                   {"metrics_address", r.metrics_address},
                   {"host", r.host},
                   {"pid", r.pid},
                   {"version", r.version},
                   {"uptime_s", h.process.uptime_seconds},
                   {"heartbeat_age_s", h.process.heartbeat_age_seconds},
                   {"healthz", h.healthz_status >= 0 ? nlohmann::json(h.healthz_status)
                                                     : nlohmann::json(nullptr)},
                   {"holds_lease", !lease_holder.empty() && r.id == lease_holder},
                   {"health", h.health}});
  }
  return nlohmann::json{{"processes", out},
                        {"health_rules",
                         {{"stale_after_s", ho.stale_after.count() / 1000.0},
                          {"gone_after_s", ho.gone_after.count() / 1000.0},
                          {"probe_timeout_ms", ho.probe_timeout.count()}}}};
}

// Multi-host folders: who leads (the lease row: holder, epoch, expiry on the database clock)
// and every registered process. {"store": "sqlite"} for a single-host folder; "lease": null
// before anyone led.
absl::StatusOr<nlohmann::json> LeaseStatus(const std::string& state) {
  auto conninfo = coordinator::StateStoreConninfo(state);
  if (!conninfo.ok()) return conninfo.status();
  if (conninfo->empty()) return nlohmann::json{{"store", "sqlite"}};
  auto lease = coordinator::OpenLeaderLease(*conninfo, "global");
  if (!lease.ok()) return lease.status();
  auto cur = (*lease)->Current();
  if (!cur.ok() && cur.status().code() != absl::StatusCode::kNotFound) return cur.status();
  const bool valid = cur.ok() && cur->expires_in_seconds > 0;
  auto processes = ProcessesJson(*conninfo, valid ? cur->holder : "");
  if (!processes.ok()) return processes.status();
  nlohmann::json out = {{"store", "postgresql"}, {"lease", nullptr}};
  out.update(*processes);
  if (cur.ok()) {
    out["lease"] = {{"population", cur->population},
                    {"holder", cur->holder},
                    {"epoch", cur->epoch},
                    {"expires_in_s", cur->expires_in_seconds},
                    {"valid", valid}};
  }
  return out;
}

void PrintLease(const nlohmann::json& j) {
  if (j["store"] != "postgresql") return;
  const auto& l = j["lease"];
  if (l.is_null()) {
    std::printf("leader: none yet (no coordinator has taken the lease; start `coordinator run`)\n");
  } else if (l["valid"].get<bool>()) {
    std::printf("leader: %s (epoch %llu), lease expires in %.1f s unless renewed\n",
                l["holder"].get<std::string>().c_str(),
                (unsigned long long)l["epoch"].get<uint64_t>(), l["expires_in_s"].get<double>());
  } else {
    std::printf(
        "leader: none: the lease of %s (epoch %llu) expired %.1f s ago (a standby takes "
        "it over; none running?)\n",
        l["holder"].get<std::string>().c_str(), (unsigned long long)l["epoch"].get<uint64_t>(),
        -l["expires_in_s"].get<double>());
  }
  const auto& rules = j["health_rules"];
  std::printf(
      "processes: %zu registered (stale: no heartbeat for %g s; gone: %g s; health: GET "
      "/healthz within %d ms)\n",
      j["processes"].size(), rules["stale_after_s"].get<double>(),
      rules["gone_after_s"].get<double>(), rules["probe_timeout_ms"].get<int>());
  // Columns as wide as their longest entry (ids and addresses vary with the hosts' names).
  int id_width = 2, address_width = 1, metrics_width = 1;
  for (const auto& p : j["processes"]) {
    id_width = std::max(id_width, static_cast<int>(p["id"].get<std::string>().size()));
    address_width =
        std::max(address_width, static_cast<int>(p["address"].get<std::string>().size()));
    metrics_width =
        std::max(metrics_width, static_cast<int>(p["metrics_address"].get<std::string>().size()));
  }
  for (const auto& p : j["processes"]) {
    const std::string address = p["address"].get<std::string>();
    const std::string metrics = p["metrics_address"].get<std::string>();
    std::printf(
        "  %-10s %-11s %-*s %-*s  metrics %-*s  %s pid %lld  up %.0f s  beat %.1f s ago%s\n",
        p["role"].get<std::string>().c_str(), p["health"].get<std::string>().c_str(), id_width,
        p["id"].get<std::string>().c_str(), address_width, address.empty() ? "-" : address.c_str(),
        metrics_width, metrics.empty() ? "-" : metrics.c_str(),
        p["host"].get<std::string>().c_str(), (long long)p["pid"].get<int64_t>(),
        p["uptime_s"].get<double>(), p["heartbeat_age_s"].get<double>(),
        p["holds_lease"].get<bool>() ? "  (holds the lease)" : "");
  }
}

void Print(const nlohmann::json& j) {
  PrintLease(j);
  const auto& p = j["privacy"];
  auto eps = [](const nlohmann::json& e) {
    return e["epsilon"].is_number() ? absl::StrFormat("%.4g", e["epsilon"].get<double>())
                                    : std::string("unbounded");
  };
  std::printf("rounds: %d committed, %d aborted, %zu charged (aborted rounds are charged too)\n",
              j["rounds_committed"].get<int>(), j["rounds_aborted"].get<int>(),
              j["rounds_charged"].get<size_t>());
  const std::string assumes = p["epsilon_observers"]["assumes"].get<std::string>();
  std::printf("epsilon %s against observers of the released adapters%s, delta %.3g\n",
              eps(p["epsilon_observers"]).c_str(),
              assumes.empty() ? "" : absl::StrCat(" (", assumes, ")").c_str(),
              p["delta"].get<double>());
  std::printf(
      "epsilon %s against this coordinator: the worst device (%d rounds, no "
      "amplification); each device enforces its own budget\n",
      eps(p["epsilon_coordinator"]).c_str(),
      p["epsilon_coordinator"]["max_rounds_per_device"].get<int>());
  std::printf(
      "devices: %zu enrolled (%d revoked), %d unused tokens; rounds per device p50 %d, "
      "p90 %d, max %d\n",
      j["devices"].get<size_t>(), j["devices_revoked"].get<int>(), j["unused_tokens"].get<int>(),
      j["participation_p50"].get<int>(), j["participation_p90"].get<int>(),
      j["participation_max"].get<int>());
  const auto& vs = j["adapter_versions"];
  if (!vs.empty()) {
    const auto& v = vs.back();
    std::printf("adapter: version %llu (round %llu, %llu bytes, sha256 %s)\n",
                (unsigned long long)v["version"].get<uint64_t>(),
                (unsigned long long)v["round"].get<uint64_t>(),
                (unsigned long long)v["bytes"].get<uint64_t>(),
                v["sha256"].get<std::string>().substr(0, 16).c_str());
  }
  for (const auto& r : j["releases"]) {
    std::string history;
    for (const auto& e : r["events"]) {
      history +=
          absl::StrFormat(" %s@%g%%", e["action"].get<std::string>(), e["percent"].get<double>());
    }
    std::printf("release %llu %s [%s]: %s at %g%%; %d devices run it, %d fell back;%s\n",
                (unsigned long long)r["version"].get<uint64_t>(),
                r["release_id"].get<std::string>().c_str(), r["segment"].get<std::string>().c_str(),
                r["state"].get<std::string>().c_str(), r["percent"].get<double>(),
                r["devices_running"].get<int>(), r["devices_fell_back"].get<int>(),
                history.c_str());
  }
  for (const auto& r : j["rounds"]) {
    std::printf("  round %-4llu %-9s %-14s %-9s eps %-8.4g %s\n",
                (unsigned long long)r["round"].get<uint64_t>(),
                r["state"].get<std::string>().c_str(), r["phase"].get<std::string>().c_str(),
                r["charged"].get<bool>() ? "charged" : "uncharged",
                r["epsilon_after"].get<double>(), r["abort_reason"].get<std::string>().c_str());
  }
}

}  // namespace

void RegisterCommand_coordinator_status(CLI::App& app) {
  auto* parent = GetOrAddSubcommand(app, "coordinator",
                                    "the federated coordinator: init, run, status, tokens, revoke");
  struct Opts {
    std::string state, device, reason = "revoked by the operator";
    int last = 20, count = 10;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* status =
      parent->add_subcommand("status", "rounds, adapter versions, releases, devices, epsilon");
  status->footer("Example:\n  fedlora coordinator status --state coord --json");
  status->add_option("--state", o->state, "state folder")->required();
  status->add_option("--last", o->last, "rounds to list")->capture_default_str()->check(AtLeast(0));
  status->add_flag("--json", o->json, "print one JSON object");
  status->callback([o] {
    auto store = coordinator::OpenStateStore(o->state);
    if (!store.ok()) return (void)Fail(store.status());
    auto j = Status(**store, o->state, o->last);
    if (!j.ok()) return (void)Fail(j.status());
    auto lease = LeaseStatus(o->state);
    if (!lease.ok()) return (void)Fail(lease.status());
    j->update(*lease);
    if (o->json) return PrintJson(*j);
    Print(*j);
  });

  auto* tokens = parent->add_subcommand("tokens", "create more single-use enrolment tokens");
  tokens->footer("Example:\n  fedlora coordinator tokens --state coord --count 100");
  tokens->add_option("--state", o->state, "state folder")->required();
  tokens->add_option("--count", o->count, "tokens to create")
      ->capture_default_str()
      ->check(GreaterThan(0));
  tokens->add_flag("--json", o->json, "print one JSON object");
  tokens->callback([o] {
    auto store = coordinator::OpenStateStore(o->state);
    if (!store.ok()) return (void)Fail(store.status());
    SecureRandom rng;
    std::vector<std::string> list, hashes;
    for (int i = 0; i < o->count; ++i) {
      std::string raw(16, '\0');
      rng.Fill(reinterpret_cast<uint8_t*>(raw.data()), raw.size());
      list.push_back(HexEncode(raw));
      hashes.push_back(HexEncode(Sha256(list.back())));
    }
    if (auto s = (*store)->AddEnrollmentTokens(hashes); !s.ok()) return (void)Fail(s);
    if (o->json) return PrintJson({{"tokens", list}});
    for (const auto& t : list) std::printf("%s\n", t.c_str());
  });

  auto* revoke = parent->add_subcommand("revoke", "revoke a device: its calls are refused");
  revoke->footer(
      "Example:\n  fedlora coordinator revoke --state coord --device dev-0123 --reason lost");
  revoke->add_option("--state", o->state, "state folder")->required();
  revoke->add_option("--device", o->device, "device id")->required();
  revoke->add_option("--reason", o->reason, "kept in the store")->capture_default_str();
  revoke->callback([o] {
    auto store = coordinator::OpenStateStore(o->state);
    if (!store.ok()) return (void)Fail(store.status());
    if (auto s = (*store)->RevokeDevice(o->device, o->reason); !s.ok()) return (void)Fail(s);
    std::printf("revoked %s\n", o->device.c_str());
  });
}

}  // namespace fedlora::cli
