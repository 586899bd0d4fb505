// `fedlora bench secagg`: one secure-aggregation round with every device and the server in
// this process; verifies the sum and reports compute time and traffic per device.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli_common.h"
#include "fedlora/secagg/bit_packing.h"
#include "fedlora/secagg/rng.h"
#include "fedlora/secagg/round_driver.h"

namespace fedlora::cli {
namespace {

struct BenchSecAggOptions {
  uint32_t devices = 100;
  uint64_t dim = 100000;
  int bits = 32;
  double dropout = 0.1;
  std::string drop_phase = "masked_input";
  std::string graph = "complete";
  uint32_t threshold = 0;
  uint32_t degree = 0;
  double corrupt = 0.05;
  int threads = 0;
  uint64_t seed = 1;
  bool json = false;
};

template <typename T>
T Median(std::vector<T> v) {
  if (v.empty()) return T{};
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

int RunBenchSecAgg(const BenchSecAggOptions& o) {
  using secagg::Phase;
  const std::map<std::string, Phase> phases = {{"advertise_keys", Phase::kAdvertiseKeys},
                                               {"share_keys", Phase::kShareKeys},
                                               {"masked_input", Phase::kMaskedInput},
                                               {"unmasking", Phase::kUnmasking}};
  secagg::RoundConfig cfg;
  cfg.session.num_devices = o.devices;
  cfg.session.dim = o.dim;
  cfg.session.bits = o.bits;
  cfg.session.graph =
      o.graph == "kregular" ? proto::SECAGG_GRAPH_KREGULAR : proto::SECAGG_GRAPH_COMPLETE;
  cfg.session.threshold = o.threshold;
  cfg.session.degree = o.degree;
  cfg.session.expected_dropout_rate = std::max(o.dropout, 0.01);
  cfg.session.corrupt_rate = o.corrupt;
  cfg.threads = o.threads;

  // Inputs: random b-bit vectors (the sum is checked against a plain sum).
  SeededRandom input_rng(o.seed * 7919 + 1);
  const uint64_t mask = o.bits == 32 ? 0xffffffffull : ((uint64_t{1} << o.bits) - 1);
  std::vector<std::vector<uint32_t>> inputs(o.devices, std::vector<uint32_t>(o.dim));
  for (auto& v : inputs) {
    input_rng.Fill(reinterpret_cast<uint8_t*>(v.data()), v.size() * 4);
    for (auto& x : v) x &= static_cast<uint32_t>(mask);
  }
  SeededRandom rng(o.seed);
  const auto plan =
      secagg::DropoutPlan::ExactFraction(phases.at(o.drop_phase), o.dropout, o.devices, rng);
  auto result = secagg::RunInProcessRound(cfg, inputs, plan, rng);
  if (!result.ok()) return Fail(result.status());
  if (result->aborted) return Fail(result->abort_status);
  const bool correct = result->sum == secagg::PlainSum(inputs, result->included_devices, o.bits);

  std::vector<double> compute;
  std::vector<uint64_t> sent, received;
  for (const auto& d : result->report.devices) {
    if (d.injected_dropout) continue;
    compute.push_back(d.compute_seconds);
    sent.push_back(d.bytes_sent);
    received.push_back(d.bytes_received);
  }
  const double plain = static_cast<double>(secagg::PackedSize(o.dim, o.bits));
  const double expansion_sent = Median(sent) / plain;
  const double expansion_total = (Median(sent) + Median(received)) / plain;
  const auto& rep = result->report;
  if (o.json) {
    nlohmann::json j = {{"devices", o.devices},
                        {"dim", o.dim},
                        {"bits", o.bits},
                        {"graph", o.graph},
                        {"degree", result->config.degree()},
                        {"threshold", result->config.threshold()},
                        {"dropout", o.dropout},
                        {"drop_phase", o.drop_phase},
                        {"included", result->included_devices.size()},
                        {"sum_correct", correct},
                        {"median_device_compute_s", Median(compute)},
                        {"server_compute_s", rep.server_compute_seconds},
                        {"server_phase_s", rep.server_phase_seconds},
                        {"wall_s", rep.wall_seconds},
                        {"median_bytes_sent", Median(sent)},
                        {"median_bytes_received", Median(received)},
                        {"plain_bytes", plain},
                        {"expansion_sent", expansion_sent},
                        {"expansion_sent_plus_received", expansion_total}};
    PrintJson(j);
  } else {
    std::cout << absl::StrFormat(
        "secagg %s: n=%u D=%u b=%d degree=%u t=%u dropout=%.2f at %s\n"
        "  sum %s over %u included devices\n"
        "  median device compute  %.3f s\n"
        "  server compute         %.3f s (phases %.3f / %.3f / %.3f / %.3f)\n"
        "  whole round (wall)     %.3f s\n"
        "  median bytes sent      %u (plain vector %.0f, expansion %.4fx)\n"
        "  median bytes received  %u (sent+received %.4fx of plain)\n",
        o.graph, o.devices, o.dim, o.bits, result->config.degree(), result->config.threshold(),
        o.dropout, o.drop_phase, correct ? "CORRECT" : "WRONG", result->included_devices.size(),
        Median(compute), rep.server_compute_seconds, rep.server_phase_seconds[0],
        rep.server_phase_seconds[1], rep.server_phase_seconds[2], rep.server_phase_seconds[3],
        rep.wall_seconds, Median(sent), plain, expansion_sent, Median(received), expansion_total);
  }
  if (!correct) {
    return Fail(absl::InternalError("secagg bench: unmasked sum differs from the plain sum"));
  }
  return 0;
}

}  // namespace

void RegisterCommand_bench_secagg(CLI::App& app) {
  CLI::App* bench = GetOrAddSubcommand(app, "bench", "micro- and macro-benchmarks");
  CLI::App* cmd = bench->add_subcommand(
      "secagg", "run one secure-aggregation round in-process; verify the sum; report costs");
  auto opts = std::make_shared<BenchSecAggOptions>();
  cmd->add_option("--devices", opts->devices, "number of devices n")->check(CLI::Range(2, 100000));
  cmd->add_option("--dim", opts->dim, "vector length D")->check(GreaterThan(0));
  cmd->add_option("--bits", opts->bits, "b: inputs in Z_{2^b}")->check(CLI::Range(1, 32));
  cmd->add_option("--dropout", opts->dropout, "fraction of devices that drop")
      ->check(CLI::Range(0.0, 0.95));
  cmd->add_option("--drop-phase", opts->drop_phase, "phase in which they drop")
      ->check(CLI::IsMember({"advertise_keys", "share_keys", "masked_input", "unmasking"}));
  cmd->add_option("--graph", opts->graph, "complete (Bonawitz) or kregular (SecAgg+)")
      ->check(CLI::IsMember({"complete", "kregular"}));
  cmd->add_option("--threshold", opts->threshold, "Shamir threshold (0 = derive)");
  cmd->add_option("--degree", opts->degree, "k-regular degree (0 = derive)");
  cmd->add_option("--corrupt", opts->corrupt, "assumed corrupt fraction for deriving t, k");
  cmd->add_option("--threads", opts->threads, "device threads (0 = all cores)");
  cmd->add_option("--seed", opts->seed, "seed of inputs, keys and dropouts");
  cmd->add_flag("--json", opts->json, "print one JSON line");
  cmd->callback([opts] { SetExitCode(RunBenchSecAgg(*opts)); });
}

}  // namespace fedlora::cli
