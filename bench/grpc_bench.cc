// bench_grpc: one secure-aggregation round over loopback TLS against a coordinator running in
// a separate (forked) process, beside the in-process round with the same N and D in the same
// run; then the coordinator's check-in throughput with signature verification.
//
//   bench_grpc [--devices 500] [--dim 100000] [--bits 20] [--checkin-seconds 5] [--probes 0]
//              [--shard-size 0] [--json]
//
// --shard-size S: the coordinator runs the round as ceil(devices / S) secure-aggregation
// sessions (max_shard_size, docs/coordinator.md "Shards"); 0 = one session.
//
// Probes: --probes enrolled devices outside the round check in (not eligible: rejected at
// once, no coin) and ask for a release (GetRelease) in a loop, 10 ms apart, from the tasks'
// arrival to the round's end; their latencies are reported for the whole round and for the
// commit window: from the last device's Unmasking call to the first final reply (the round's
// finish: unmasking, decoding, the server step and the store commit). With probes, device
// inputs are privatized zero deltas, so the sum passes the norm bound and the round commits;
// without, uniform random vectors (the round aborts at the norm bound, after unmasking).
//
// Devices are threads of this process, each with its own connection and key; their inputs are
// random vectors (the secure-aggregation cost does not depend on the values), so the figure is
// the protocol and transport, not training. Coordinator CPU and peak RSS come from
// /proc/<pid> of the forked coordinator.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "fedlora/common/adapter_blob.h"
#include "fedlora/common/encoding.h"
#include "fedlora/common/random.h"
#include "fedlora/coordinator/coordinator_server.h"
#include "fedlora/coordinator/demo_pki.h"
#include "fedlora/device/participation.h"
#include "fedlora/privacy/params_wire.h"
#include "fedlora/privacy/prepare_update.h"
#include "fedlora/secagg/round_driver.h"
#include "nlohmann/json.hpp"
#include "CLI/CLI.hpp"
#include "bench_devices.h"
#include "proc_stats.h"

namespace fedlora {
namespace {

using bench::Now;
using bench::ProcStats;
using bench::ReadProc;

struct Args {
  int devices = 500;
  size_t dim = 100000;
  int bits = 20;
  double checkin_seconds = 5;
  int probes = 0;  // 0: no probes, random inputs (the figures measured before 2026-12-06)
  int shard_size = 0;  // max_shard_size of the coordinator (0 = one session)
  bool json = false;
};

// One probe call: when it started and ended (Now()), and whether it was a check-in.
struct ProbeCall {
  double start, end;
  bool checkin;
};

// p50/p99/max in ms of the calls of `kind` overlapping [from, to], and their number.
nlohmann::json ProbeStats(const std::vector<ProbeCall>& calls, bool checkin, double from,
                          double to) {
  std::vector<double> ms;
  for (const auto& c : calls) {
    if (c.checkin == checkin && c.end >= from && c.start <= to) {
      ms.push_back(1000 * (c.end - c.start));
    }
  }
  std::sort(ms.begin(), ms.end());
  auto at = [&](double q) {
    return ms.empty() ? 0 : ms[std::min(ms.size() - 1, size_t(q * ms.size()))];
  };
  return {{"n", ms.size()}, {"p50_ms", at(0.5)}, {"p99_ms", at(0.99)},
          {"max_ms", ms.empty() ? 0 : ms.back()}};
}

// The coordinator's state folder: initial adapter of `dim` values, one token per device, TLS.
void MakeState(const std::string& dir, const Args& a) {
  std::filesystem::remove_all(dir);
  auto store = coordinator::OpenSqliteStore(dir);
  if (!store.ok()) std::abort();
  AdapterBlob blob;
  blob.lora = {{"peft_type", "LORA"}, {"r", 8}, {"target_modules", {"q_proj"}}};
  blob.values.assign(a.dim, 0.0f);
  (void)(*store)->PutInitialAdapter(EncodeAdapterBlob(blob));
  std::vector<std::string> hashes;
  for (int i = 0; i < a.devices + a.probes; ++i) {
    hashes.push_back(HexEncode(Sha256("tok" + std::to_string(i))));
  }
  (void)(*store)->AddEnrollmentTokens(hashes);
  if (!coordinator::CreateDemoPki(dir + "/tls", {"localhost"}, {"127.0.0.1"}).ok()) std::abort();
}

// Child: serves one round, then stays up (finished: check-ins are rejected after signature
// verification) until killed.
[[noreturn]] void ServeCoordinator(const std::string& dir, const Args& a, int port_fd) {
  coordinator::ServerOptions o;
  o.state_dir = dir;
  o.listen = "127.0.0.1:0";
  auto& c = o.coordinator;
  c.recipe.mode = privacy::DpMode::kDistributed;
  c.recipe.sampling = privacy::Sampling::kPoisson;
  c.recipe.population = a.devices;
  c.recipe.expected_cohort = a.devices;
  c.recipe.poisson_rate = 1;
  c.recipe.noise_multiplier = 1;
  c.recipe.clip = 1;
  c.recipe.bits = a.bits;
  c.recipe.min_survivors = 0.8;
  c.recipe.delta = 1e-6;
  c.recipe.max_shard_size = a.shard_size;
  c.max_rounds = 1;
  c.selection_window = absl::Seconds(5);
  c.train_deadline = absl::Seconds(300);
  c.phase_deadline = absl::Seconds(300);
  o.limits.max_downloads = a.devices;
  c.log = [](const std::string& line) { std::fprintf(stderr, "coordinator: %s\n", line.c_str()); };
  auto server = coordinator::CoordinatorServer::Start(o);
  int port = server.ok() ? (*server)->port() : 0;
  if (!server.ok()) std::fprintf(stderr, "coordinator: %s\n", server.status().ToString().c_str());
  (void)!write(port_fd, &port, sizeof(port));
  while (true) pause();
}

}  // namespace
}  // namespace fedlora

int main(int argc, char** argv) {
  using namespace fedlora;
  Args a;
  CLI::App app("bench_grpc: one secure-aggregation round over loopback TLS, then check-ins/s");
  app.add_option("--devices", a.devices, "devices in the round")->capture_default_str();
  app.add_option("--dim", a.dim, "adapter values (D before the rotation's padding)")
      ->capture_default_str();
  app.add_option("--bits", a.bits, "secure-aggregation modulus bits")->capture_default_str();
  app.add_option("--checkin-seconds", a.checkin_seconds, "check-in throughput measurement")
      ->capture_default_str();
  app.add_option("--probes", a.probes, "devices outside the round probing latency")
      ->capture_default_str();
  app.add_option("--shard-size", a.shard_size, "max_shard_size (0 = one session)")
      ->capture_default_str();
  app.add_flag("--json", a.json, "one JSON object");
  CLI11_PARSE(app, argc, argv);
  bench::RaiseOpenFilesLimit();
  const std::string dir = std::filesystem::temp_directory_path().string() + "/bench_grpc_state";
  MakeState(dir, a);
  int fds[2];
  if (pipe(fds) != 0) return 1;
  const pid_t child = fork();  // before any gRPC state exists in this process
  if (child == 0) ServeCoordinator(dir, a, fds[1]);
  int port = 0;
  if (read(fds[0], &port, sizeof(port)) != sizeof(port) || port == 0) return 1;
  const std::string address = "127.0.0.1:" + std::to_string(port);
  const ProcStats idle = ReadProc(child);

  // Devices: enrol, check in (all selected), then the four phases.
  // Clients a.devices.. are the probes (enrolled, never in the round).
  const int enrolled = a.devices + a.probes;
  std::vector<bench::BenchDevice> devs(enrolled);
  std::vector<device::CoordinatorClient*> clients(enrolled);
  device::ChannelOptions co;
  co.address = address;
  co.ca_pem_path = dir + "/tls/ca.pem";
  co.server_name = "localhost";
  for (int i = 0; i < enrolled; ++i) {
    auto d = bench::EnrollBenchDevice(*device::MakeChannel(co), "tok" + std::to_string(i));
    if (!d.ok()) {
      std::fprintf(stderr, "enrol: %s\n", d.status().ToString().c_str());
      kill(child, SIGKILL);
      return 1;
    }
    devs[i] = std::move(*d);
    clients[i] = devs[i].client.get();
  }
  const ProcStats before = ReadProc(child);
  std::atomic<int> completed{0};
  uint64_t session_dim = a.dim;  // the protocol's D: the adapter padded for the DP rotation
  std::vector<double> first_send(a.devices), done_at(a.devices), unmask_sent(a.devices, 0);
  uint64_t bytes_sent_total = 0;
  const double t0 = Now();
  // Check-ins first (all selected; tasks arrive when selection closes), then each device's
  // input is drawn outside the timed window (the in-process round's inputs are drawn before
  // its timer too), then the four secure-aggregation phases, timed.
  std::vector<std::optional<v1::Task>> tasks = bench::CheckInAll(
      std::vector<device::CoordinatorClient*>(clients.begin(), clients.begin() + a.devices),
      absl::Seconds(120));
  int tasked = 0;
  std::set<uint32_t> shards;  // the shards the coordinator formed
  for (const auto& t : tasks) {
    tasked += t.has_value();
    if (t) shards.insert(t->shard());
  }
  std::fprintf(stderr, "%d of %d devices got a task\n", tasked, a.devices);
  std::vector<std::vector<uint32_t>> device_inputs(a.devices);
  for (int i = 0; i < a.devices; ++i) {
    if (!tasks[i]) continue;
    session_dim = tasks[i]->secagg().dim();
    SeededRandom gen_i(static_cast<uint64_t>(i));
    if (a.probes > 0) {
      // A privatized zero delta: the decoded sum passes the norm bound and the round commits.
      auto params = privacy::ParamsFromProto(tasks[i]->privacy());
      std::vector<float> zero(params.ok() ? params->dim : 0, 0.0f);
      SecureRandom noise;  // DP noise takes a secure generator only
      auto up = params.ok() ? privacy::PrepareUpdate(zero.data(), zero.size(), *params, noise)
                            : absl::StatusOr<privacy::PreparedUpdate>(params.status());
      if (up.ok()) {
        device_inputs[i] = std::move(up->secagg_input);
      } else if (i == 0) {
        std::fprintf(stderr, "privatizing: %s\n", up.status().ToString().c_str());
      }
      continue;
    }
    device_inputs[i].resize(tasks[i]->secagg().dim());
    for (auto& x : device_inputs[i]) {
      x = static_cast<uint32_t>(gen_i.Uniform(uint64_t{1} << tasks[i]->secagg().bits()));
    }
  }
  // The probes run from here to the round's end.
  std::vector<std::vector<ProbeCall>> probe_calls(a.probes);
  std::atomic<bool> probes_stop{false};
  std::vector<std::thread> probes;
  for (int k = 0; k < a.probes; ++k) {
    probes.emplace_back([&, k] {
      device::CoordinatorClient& c = *clients[a.devices + k];
      while (!probes_stop) {
        // Not eligible: rejected without a coin (never sampled), after the same
        // authentication and the round manager's lock as any check-in.
        v1::CheckInRequest req;
        req.set_eligible(false);
        double s = Now();
        if (c.CheckIn(req, absl::Seconds(60)).ok()) probe_calls[k].push_back({s, Now(), true});
        v1::ReleaseRequest rel;
        s = Now();
        if (c.GetRelease(rel, absl::Seconds(60)).ok()) probe_calls[k].push_back({s, Now(), false});
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    });
  }
  {
    std::vector<std::thread> threads;
    for (int i = 0; i < a.devices; ++i) {
      if (!tasks[i]) continue;
      threads.emplace_back([&, i] {
        SecureRandom rng;
        device::ParticipationResult r;
        first_send[i] = Now();
        absl::Status st = device::RunSecAggClient(
            *clients[i], *tasks[i], std::move(device_inputs[i]), absl::Minutes(10), rng, &r,
            [&, i](int phase, v1::SecAggUpload*) {
              if (phase == 3) unmask_sent[i] = Now();
              return true;
            });
        done_at[i] = Now();
        completed += r.completed;
        if (!r.completed && i == 0) {
          std::fprintf(stderr, "device 0: %s %s\n", st.ToString().c_str(), r.detail.c_str());
        }
      });
    }
    for (auto& t : threads) t.join();
  }
  const double t1 = Now();
  const ProcStats after = ReadProc(child);
  probes_stop = true;
  for (auto& t : probes) t.join();
  std::vector<ProbeCall> calls;
  for (const auto& p : probe_calls) calls.insert(calls.end(), p.begin(), p.end());
  // The commit window: the last Unmasking call sent to the first final reply.
  double commit_from = 0, commit_to = 1e300;
  for (int i = 0; i < a.devices; ++i) {
    if (!tasks[i] || unmask_sent[i] == 0) continue;
    commit_from = std::max(commit_from, unmask_sent[i]);
    commit_to = std::min(commit_to, done_at[i]);
  }
  if (commit_from == 0 || commit_to < commit_from) commit_to = commit_from;  // no finish
  for (int i = 0; i < a.devices; ++i) bytes_sent_total += clients[i]->bytes_sent();
  const double secagg_start = *std::min_element(first_send.begin(), first_send.end());
  const double secagg_end = *std::max_element(done_at.begin(), done_at.end());

  // The same round in-process.
  secagg::RoundConfig rc;
  rc.session.num_devices = static_cast<uint32_t>(a.devices);
  rc.session.dim = session_dim;  // the same vectors as the gRPC round aggregates
  rc.session.bits = a.bits;
  rc.session.graph = proto::SECAGG_GRAPH_KREGULAR;
  rc.session.min_sum_devices = static_cast<uint32_t>(std::ceil(0.8 * a.devices));
  rc.session.expected_dropout_rate = 0.05;
  std::vector<std::vector<uint32_t>> inputs(a.devices, std::vector<uint32_t>(session_dim));
  SeededRandom gen(uint64_t{1});
  for (auto& v : inputs) {
    for (auto& x : v) x = static_cast<uint32_t>(gen.Uniform(uint64_t{1} << a.bits));
  }
  SeededRandom round_rng(uint64_t{2});
  auto inproc = secagg::RunInProcessRound(rc, inputs, secagg::DropoutPlan::None(), round_rng);
  const double inproc_wall = inproc.ok() ? inproc->report.wall_seconds : -1;

  // Check-in throughput: the run is over, every check-in is authenticated then rejected.
  const int workers = 8;
  std::vector<std::vector<double>> lat(workers);
  std::atomic<bool> stop{false};
  std::vector<std::thread> w;
  for (int k = 0; k < workers; ++k) {
    w.emplace_back([&, k] {
      v1::CheckInRequest req;
      req.set_eligible(true);
      while (!stop) {
        const double s = Now();
        auto r = clients[k]->CheckIn(req, absl::Seconds(10));
        if (r.ok()) lat[k].push_back(Now() - s);
      }
    });
  }
  const ProcStats cbefore = ReadProc(child);
  std::this_thread::sleep_for(std::chrono::duration<double>(a.checkin_seconds));
  stop = true;
  for (auto& t : w) t.join();
  const ProcStats cafter = ReadProc(child);
  std::vector<double> all;
  for (auto& l : lat) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  const double p99 = all.empty() ? 0 : all[std::min(all.size() - 1, size_t(0.99 * all.size()))];
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  std::filesystem::remove_all(dir);

  const double raw = 4.0 * a.dim;
  nlohmann::json j = {
      {"devices", a.devices},
      {"shard_size", a.shard_size},
      {"shards", shards.size()},
      {"dim", a.dim},
      {"secagg_dim", session_dim},
      {"bits", a.bits},
      {"completed", completed.load()},
      {"grpc_round_wall_seconds", t1 - t0},
      {"grpc_secagg_wall_seconds", secagg_end - secagg_start},
      {"inprocess_round_wall_seconds", inproc_wall},
      {"ratio_secagg_grpc_over_inprocess", inproc_wall > 0 ? (secagg_end - secagg_start) / inproc_wall : 0},
      {"coordinator_cpu_seconds_round", after.cpu_seconds - before.cpu_seconds},
      {"coordinator_peak_rss_mb", after.peak_rss_mb},
      {"coordinator_idle_rss_mb", idle.peak_rss_mb},
      {"bytes_sent_per_device", double(bytes_sent_total) / a.devices},
      {"raw_float32_delta_bytes", raw},
      {"wire_over_raw", double(bytes_sent_total) / a.devices / raw},
      {"checkins_per_second", all.size() / a.checkin_seconds},
      {"checkin_p99_ms", 1000 * p99},
      {"coordinator_cpu_seconds_checkins", cafter.cpu_seconds - cbefore.cpu_seconds},
      {"cores", std::thread::hardware_concurrency()},
      {"probes", a.probes},
      {"commit_window_seconds", commit_to - commit_from},
      {"probe_checkin_during_commit", ProbeStats(calls, true, commit_from, commit_to)},
      {"probe_release_during_commit", ProbeStats(calls, false, commit_from, commit_to)},
      {"probe_checkin_during_round", ProbeStats(calls, true, t0, t1)},
      {"probe_release_during_round", ProbeStats(calls, false, t0, t1)},
  };
  if (a.json) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s\n", j.dump(2).c_str());
  }
  return completed.load() == a.devices ? 0 : 1;
}
