// fedlora sim [--config FILE] [--set section.key=value]... [--model DIR] [--data PATH] ...
// The federated simulation: rounds of local LoRA training on virtual devices, clipping,
// distributed DP encoding, secure aggregation, server optimizer, accounting, evaluation.
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli_common.h"
#include "fedlora/common/progress.h"
#include "fedlora/privacy/participation_accountant.h"
#include "fedlora/sim/run.h"

namespace fedlora::cli {
namespace {

// This binary, to start `fedlora coordinator run` from (--transport grpc).
std::string SelfExecutable() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("fedlora") : p.string();
}

void PrintTable(const sim::Summary& s) {
  auto row = [](const char* name, const sim::Metrics& m) {
    std::printf("| %-13s | %10.2f | %15.4f | %14.4f | %17.4f |\n", name, m.perplexity,
                m.next_token_top1, m.next_word_top3, m.keystroke_savings);
  };
  for (const auto* e : {&s.participants, &s.heldout}) {
    if (!e->has_value()) continue;
    std::printf("\n%s (%d users)\n", (*e)->population.c_str(), (*e)->users);
    std::printf("| model         | perplexity | next-token top1 | next-word top3 | keystroke savings |\n");
    std::printf("|---------------|------------|-----------------|----------------|-------------------|\n");
    row("base", (*e)->base);
    row("federated", (*e)->global);
    row("personalized", (*e)->personalized);
    const auto& u = **e;
    std::printf("users helped/hurt (keystroke savings): federated vs base %d/%d, personalized vs "
                "federated %d/%d; %d of %d kept their personal adapter\n",
                u.global_vs_base_keystrokes.gain, u.global_vs_base_keystrokes.lose,
                u.personalized_vs_global_keystrokes.gain, u.personalized_vs_global_keystrokes.lose,
                u.personalized_kept, u.users);
    if (u.suggest_calls > 0) {
      std::printf("suggestion strip (%s): p50 %.1f ms, p95 %.1f ms over %d calls\n",
                  u.personalize_method.c_str(), u.suggest_p50_ms, u.suggest_p95_ms,
                  u.suggest_calls);
    }
    if (!u.methods.empty()) {
      std::printf("| method        | perplexity | next-word top3 | keystroke savings | kept |\n");
      for (const auto& m : u.methods) {
        std::printf("| %-13s | %10.2f | %14.4f | %17.4f | %4d |\n", m.method.c_str(),
                    m.metrics.perplexity, m.metrics.next_word_top3, m.metrics.keystroke_savings,
                    m.kept);
      }
    }
  }
  std::printf("\nafter %d rounds, at delta %.3g%s%s:\n", s.rounds_completed, s.delta,
              s.stop_reason.empty() ? "" : "; ", s.stop_reason.c_str());
  std::printf("  epsilon %.4g against observers of the released adapters%s%s%s\n", s.epsilon,
              s.privacy_assumption.empty() ? "" : " (", s.privacy_assumption.c_str(),
              s.privacy_assumption.empty() ? "" : ")");
  std::printf(
      "  epsilon %s against the coordinator itself (the worst device: %d rounds, no "
      "amplification by sampling)\n",
      privacy::FormatEpsilon(s.epsilon_coordinator).c_str(), s.max_rounds_per_device);
  if (s.shard_min > 0) {
    std::printf(
        "secure aggregation: %s session(s) per round, each needing %d survivors (every device's "
        "noise is calibrated for that minimum)\n",
        sim::ShardCountsText(s.shards_per_round).c_str(), s.shard_min);
  }
  if (!s.aggregator_shards.empty()) {
    std::printf("shards summed by aggregator processes: %s\n",
                sim::AggregatorShardsText(s.aggregator_shards).c_str());
  }
  if (!s.engine.empty()) std::printf("round engine: %s\n", s.engine.c_str());
  if (!s.randomness.empty()) std::printf("randomness: %s\n", s.randomness.c_str());
  if (!s.base_model_scheme.empty()) std::printf("base model: %s\n", s.base_model_scheme.c_str());
}

}  // namespace

void RegisterCommand_sim(CLI::App& app) {
  struct Opts {
    std::string config_file;
    std::vector<std::string> sets;
    std::string model, data, data_format, dp, out, mode, transport;
    int devices = 0, rounds = 0, cohort = 0, threads = 0;
    uint64_t seed = 0;
    bool json = false, force = false, print_config = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand(
      "sim", "simulate federated LoRA rounds on virtual devices (DP + secure aggregation)");
  cmd->add_option("--config", o->config_file, "INI config file (keys: docs/sim.md)");
  cmd->add_option("--set", o->sets, "override one key: section.key=value (repeatable)");
  auto* model = cmd->add_option("--model", o->model, "base model dir (default: pretrain one)");
  auto* data = cmd->add_option("--data", o->data,
                               "dataset: dir, .jsonl, .tsv, play .txt, personas[:users=N]");
  auto* fmt = cmd->add_option("--data-format", o->data_format,
                              "auto|dir|jsonl|shakespeare-tsv|play-text|personas");
  // These flags override config keys (only when given); the defaults shown are the built-in
  // config's (docs/sim.md), in the same "=VALUE" form as every other command.
  const sim::SimConfig d;
  o->devices = d.devices;
  o->rounds = d.rounds;
  o->cohort = d.cohort;
  o->dp = "distributed";
  o->seed = d.seed;
  o->out = d.out;
  o->mode = "batched";
  o->transport = "inprocess";
  auto* devices = cmd->add_option("--devices", o->devices, "training population size")
                      ->capture_default_str();
  auto* rounds = cmd->add_option("--rounds", o->rounds, "rounds")->capture_default_str();
  auto* cohort = cmd->add_option("--cohort", o->cohort, "devices per round")->capture_default_str();
  auto* dp = cmd->add_option("--dp", o->dp, "none|central|distributed")->capture_default_str();
  auto* seed = cmd->add_option("--seed", o->seed, "seed")->capture_default_str();
  auto* out = cmd->add_option("--out", o->out, "output directory")->capture_default_str();
  auto* mode = cmd->add_option("--mode", o->mode, "auto|batched|sequential local training (auto: batched at hidden size 128 or less)")
                   ->capture_default_str();
  auto* transport =
      cmd->add_option("--transport", o->transport,
                      "inprocess|grpc (grpc: a real coordinator process, devices as its clients)")
          ->capture_default_str();
  auto* threads = cmd->add_option("--threads", o->threads, "BLAS threads (0 = all cores)");
  cmd->add_flag("--force", o->force, "overwrite an earlier run's files in --out");
  cmd->add_flag(
      "--print-config", o->print_config,
      "print every key with its value as an INI file (a config to start from), then exit");
  cmd->add_flag("--json", o->json, "one JSON object per round, then a summary object");
  cmd->callback([=] {
    sim::SimConfig c;
    if (!o->config_file.empty()) {
      if (auto s = sim::ApplyConfigFile(o->config_file, &c); !s.ok()) return (void)Fail(s);
    }
    std::vector<std::pair<std::string, std::string>> overrides;
    for (const auto& kv : o->sets) {
      auto eq = kv.find('=');
      if (eq == std::string::npos) {
        return (void)Fail(
            absl::InvalidArgumentError("--set '" + kv + "': expected section.key=value"));
      }
      overrides.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    }
    if (model->count()) overrides.emplace_back("model.model", o->model);
    if (data->count()) overrides.emplace_back("data.data", o->data);
    if (fmt->count()) overrides.emplace_back("data.format", o->data_format);
    if (devices->count()) overrides.emplace_back("data.devices", std::to_string(o->devices));
    if (rounds->count()) overrides.emplace_back("rounds.rounds", std::to_string(o->rounds));
    if (cohort->count()) overrides.emplace_back("rounds.cohort", std::to_string(o->cohort));
    if (dp->count()) overrides.emplace_back("privacy.dp", o->dp);
    if (seed->count()) overrides.emplace_back("run.seed", std::to_string(o->seed));
    if (out->count()) overrides.emplace_back("run.out", o->out);
    if (mode->count()) overrides.emplace_back("local.mode", o->mode);
    if (transport->count()) overrides.emplace_back("run.transport", o->transport);
    if (threads->count()) overrides.emplace_back("run.threads", std::to_string(o->threads));
    if (o->json) overrides.emplace_back("output.json", "true");
    for (const auto& [k, v] : overrides) {
      if (auto s = sim::ApplyOverride(k, v, &c); !s.ok()) return (void)Fail(s);
    }
    if (o->print_config) {
      std::cout << sim::ConfigToIni(c);
      return;
    }
    ProgressBar bar("rounds", c.rounds, c.progress && !c.json);
    sim::RunOptions ro;
    ro.force = o->force;
    ro.fedlora_binary = SelfExecutable();
    ro.on_checked = [&] {
      if (!c.json) std::fprintf(stderr, "fedlora sim: preparing model and population...\n");
    };
    ro.on_ready = [&](const sim::Simulator& simulator) {
      if (c.json) return;
      std::fprintf(
          stderr,
          "fedlora sim: %d devices (+%d held-out users), %d rounds, cohort %d, dp %s, model %s "
          "(%s)\n",
          simulator.num_train_devices(), simulator.num_heldout_users(), c.rounds, c.cohort,
          privacy::DpModeName(c.dp), simulator.model_dir().c_str(),
          simulator.base_description().c_str());
    };
    ro.on_round = [&](const sim::RoundRecord& r) {
      if (c.json) {
        PrintJson(r.ToJson());
      } else {
        bar.Update(r.round, absl::StrFormat("loss %.3f eps %.3g / %s", r.train_loss, r.epsilon,
                                            privacy::FormatEpsilon(r.epsilon_coordinator)));
      }
    };
    // Validates everything before anything is written (sim/run.h).
    auto result = sim::RunSimulation(c, ro);
    bar.Finish();
    if (!result.ok()) return (void)Fail(result.status());
    const std::string& adapter_dir = result->summary.adapter_dir;
    if (c.json) {
      PrintJson(result->summary.ToJson());
    } else {
      PrintTable(result->summary);
      std::printf("report: %s/report.md  adapter: %s  (%.1f s)\n", c.out.c_str(),
                  adapter_dir.c_str(), result->summary.seconds);
    }
  });
}

}  // namespace fedlora::cli
