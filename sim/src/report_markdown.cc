// report.md: the human-readable account of a `fedlora sim` run.
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "fedlora/privacy/participation_accountant.h"
#include "report_internal.h"

namespace fedlora::sim::internal {
namespace {

constexpr size_t kMaxRoundRows = 30;  // the rounds table shows at most about this many rows
constexpr size_t kMaxDropLines = 20;  // individual drops listed

// A config value as text ("?" when the key is missing).
std::string ConfigText(const nlohmann::json& config, const char* key) {
  const auto it = config.find(key);
  if (it == config.end()) return "?";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

// Escapes '|' so free text cannot break a table row.
std::string Cellify(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|')
      out += "\\|";
    else if (c == '\n')
      out += ' ';
    else
      out += c;
  }
  return out;
}

// Every personalization method on the same users and global adapter (final evaluation), and
// the suggestion latency of the method the run uses.
void MethodsTable(const Summary& summary, std::string* md) {
  for (const auto* eval : {&summary.participants, &summary.heldout}) {
    if (!eval->has_value() || (*eval)->suggest_calls == 0) continue;
    absl::StrAppend(md, "Suggestion strip latency (", (*eval)->population, ", ",
                    (*eval)->personalize_method, ", ", (*eval)->suggest_calls, " calls): p50 ",
                    absl::StrFormat("%.1f", (*eval)->suggest_p50_ms), " ms, p95 ",
                    absl::StrFormat("%.1f", (*eval)->suggest_p95_ms), " ms.\n\n");
  }
  if (!summary.participants || summary.participants->methods.empty()) return;
  absl::StrAppend(md,
                  "### Personalization methods (same users, same global adapter)\n\n"
                  "| users | method | perplexity | next-word top-3 | keystroke savings | "
                  "kept personal | helped / hurt (keystrokes) |\n"
                  "|---|---|---:|---:|---:|---:|---|\n");
  for (const auto* eval : {&summary.participants, &summary.heldout}) {
    if (!eval->has_value()) continue;
    const EvalRecord& e = **eval;
    const std::string who = e.population == "heldout" ? "held-out" : e.population;
    absl::StrAppend(md, "| ", who, " | (federated) | ", Num(e.global.perplexity), " | ",
                    Percent(e.global.next_word_top3), " | ", Percent(e.global.keystroke_savings),
                    " | | |\n");
    for (const MethodRecord& m : e.methods) {
      absl::StrAppend(md, "| ", who, " | ", m.method, " | ", Num(m.metrics.perplexity), " | ",
                      Percent(m.metrics.next_word_top3), " | ",
                      Percent(m.metrics.keystroke_savings), " | ", m.kept, " of ", e.users, " | ",
                      m.vs_global_keystrokes.gain, " / ", m.vs_global_keystrokes.lose, " |\n");
    }
  }
  absl::StrAppend(md, "\n");
}

void ResultsTable(const Summary& summary, const std::vector<RoundRecord>& rounds, std::string* md) {
  absl::StrAppend(md, "## Base vs federated vs personalized\n\n");
  if (!summary.participants && !summary.heldout) {
    absl::StrAppend(md, "No evaluation was run.\n\n");
    return;
  }
  int last_eval = 0;
  for (const RoundRecord& r : rounds) {
    if (r.eval_participants || r.eval_heldout) last_eval = r.round;
  }
  absl::StrAppend(md, "Last evaluation",
                  last_eval > 0 ? absl::StrCat(" (after round ", last_eval, ")") : "",
                  ". *base* = pretrained model, *federated* = base + the global "
                  "adapter, *personalized* = what each user's device runs after personalizing "
                  "on its own training text (method: ",
                  summary.participants ? summary.participants->personalize_method
                                       : summary.heldout->personalize_method,
                  ConfigText(summary.config, "rounds.learn_typed") == "true"
                      ? "; its counts learn each line once it has been typed"
                      : "",
                  "). Scored on each user's test text.\n\n"
                  "| users | model | perplexity | next-token top-1 | next-word top-3 | "
                  "keystroke savings |\n"
                  "|---|---|---:|---:|---:|---:|\n");
  for (const auto* eval : {&summary.participants, &summary.heldout}) {
    if (!eval->has_value()) continue;
    const EvalRecord& e = **eval;
    const std::string who =
        absl::StrCat(e.population == "heldout" ? "held-out" : e.population, " (", e.users, ")");
    const std::pair<const char*, const Metrics*> rows[] = {
        {"base", &e.base}, {"federated", &e.global}, {"personalized", &e.personalized}};
    for (const auto& [name, m] : rows) {
      absl::StrAppend(md, "| ", Cellify(who), " | ", name, " | ", Num(m->perplexity), " | ",
                      Percent(m->next_token_top1), " | ", Percent(m->next_word_top3), " | ",
                      Percent(m->keystroke_savings), " |\n");
    }
  }
  absl::StrAppend(md,
                  "\nUsers helped / hurt / unchanged, each on their own test text:\n\n"
                  "| users | step | next-word top-3 | keystroke savings |\n|---|---|---|---|\n");
  auto shift = [](const UserShift& u) {
    return absl::StrCat(u.gain, " / ", u.lose, " / ", u.same);
  };
  for (const auto* eval : {&summary.participants, &summary.heldout}) {
    if (!eval->has_value()) continue;
    const EvalRecord& e = **eval;
    const std::string who = e.population == "heldout" ? "held-out" : e.population;
    absl::StrAppend(md, "| ", who, " | federated vs base | ", shift(e.global_vs_base_top3), " | ",
                    shift(e.global_vs_base_keystrokes), " |\n");
    absl::StrAppend(md, "| ", who, " | personalized vs federated | ",
                    shift(e.personalized_vs_global_top3), " | ",
                    shift(e.personalized_vs_global_keystrokes), " |\n");
  }
  absl::StrAppend(md, "\n");
  MethodsTable(summary, md);
}

void PrivacySection(const Summary& summary, std::string* md) {
  const std::string dp = ConfigText(summary.config, "privacy.dp");
  absl::StrAppend(md, "## Privacy\n\n| | |\n|---|---|\n", "| differential privacy | ", dp, " |\n");
  if (dp != "none") {
    absl::StrAppend(md, "| noise multiplier | ",
                    ConfigText(summary.config, "privacy.noise_multiplier"), " |\n| clipping | ",
                    ConfigText(summary.config, "privacy.clip_mode"), " |\n");
  }
  absl::StrAppend(md, "| epsilon against observers of the released adapters | ",
                  Num(summary.epsilon), " |\n| epsilon against the coordinator (worst device, ",
                  summary.max_rounds_per_device, " rounds, no amplification) | ",
                  privacy::FormatEpsilon(summary.epsilon_coordinator), " |\n| delta | ",
                  absl::StrFormat("%.3g", summary.delta), " |\n");
  const std::string budget = ConfigText(summary.config, "privacy.epsilon_budget");
  if (budget != "?") {
    absl::StrAppend(md, "| epsilon budget | ", budget == "0" || budget == "0.0" ? "none" : budget,
                    " |\n");
  }
  if (!summary.privacy_assumption.empty()) {
    absl::StrAppend(md, "| epsilon against observers assumes | ", summary.privacy_assumption,
                    " |\n");
  }
  if (!summary.engine.empty()) {
    absl::StrAppend(md, "| round engine | ", summary.engine, " |\n");
  }
  if (summary.shard_min > 0) {
    absl::StrAppend(md, "| secure-aggregation sessions (shards) per round | ",
                    ShardCountsText(summary.shards_per_round), "; each shard needs ",
                    summary.shard_min, " survivors (every device's noise is calibrated for it; ",
                    "secagg.max_shard_size = ", ConfigText(summary.config, "secagg.max_shard_size"),
                    ") |\n");
  }
  if (!summary.aggregator_shards.empty()) {
    absl::StrAppend(md, "| shards summed by aggregator processes | ",
                    AggregatorShardsText(summary.aggregator_shards),
                    " (their /metrics; the rest ran at the leader) |\n");
  }
  if (!summary.randomness.empty()) {
    absl::StrAppend(md, "| randomness | ", summary.randomness, " |\n");
  }
  if (!summary.base_model_scheme.empty()) {
    absl::StrAppend(md, "| base model | ", summary.base_model_scheme, " (`", summary.base_model_dir,
                    "`) |\n");
  }
  absl::StrAppend(md, "\n");
}

void DropsSection(const std::vector<RoundRecord>& rounds, std::string* md) {
  std::map<std::string, int> per_phase;
  size_t total = 0;
  std::vector<std::string> aborted;
  for (const RoundRecord& r : rounds) {
    for (const DropRecord& d : r.dropped) ++per_phase[d.phase];
    total += r.dropped.size();
    if (r.aborted) {
      aborted.push_back(absl::StrCat("- round ", r.round, " aborted: ", r.abort_reason));
    }
  }
  absl::StrAppend(md, "## Dropped devices\n\n", total, " drops over ", rounds.size(),
                  " rounds; aborted rounds (no update applied): ", aborted.size(), ".\n\n");
  if (!per_phase.empty()) {
    absl::StrAppend(md, "| phase | drops |\n|---|---:|\n");
    for (const auto& [phase, n] : per_phase)
      absl::StrAppend(md, "| ", Cellify(phase), " | ", n, " |\n");
    absl::StrAppend(md, "\n");
  }
  for (const std::string& line : aborted) absl::StrAppend(md, line, "\n");
  if (!aborted.empty()) absl::StrAppend(md, "\n");
  size_t listed = 0;
  for (const RoundRecord& r : rounds) {
    for (const DropRecord& d : r.dropped) {
      if (listed == kMaxDropLines) break;
      ++listed;
      absl::StrAppend(md, "- round ", r.round, ": device ", d.device, " (user ", d.user, ") in ",
                      d.phase, d.reason.empty() ? "" : absl::StrCat(": ", d.reason), "\n");
    }
  }
  if (total > kMaxDropLines) {
    absl::StrAppend(md, "- ... ", total - kMaxDropLines, " more in rounds.jsonl\n");
  }
  if (total > 0) absl::StrAppend(md, "\n");
}

std::string GlobalPpl(const std::optional<EvalRecord>& e) {
  return e ? Num(e->global.perplexity) : "";
}

void RoundsTable(const std::vector<RoundRecord>& rounds, std::string* md) {
  absl::StrAppend(md, "## Rounds\n\n");
  if (rounds.empty()) {
    absl::StrAppend(md, "No round completed.\n\n");
    return;
  }
  const size_t stride = (rounds.size() + kMaxRoundRows - 1) / kMaxRoundRows;
  if (stride > 1) {
    absl::StrAppend(md, "One round in ", stride,
                    ", the evaluated rounds and the last round; all rounds are in rounds.csv.\n\n");
  }
  absl::StrAppend(md,
                  "| round | sampled | survivors | train loss | update norm | clipped | clip | "
                  "epsilon | seconds | global ppl (participants) | global ppl (held-out) |\n"
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (size_t i = 0; i < rounds.size(); ++i) {
    const RoundRecord& r = rounds[i];
    const bool eval = r.eval_participants || r.eval_heldout;
    if (i % stride != 0 && i + 1 != rounds.size() && !eval) continue;
    absl::StrAppend(md, "| ", r.round, " | ", r.sampled, " | ", r.survivors,
                    r.aborted ? " (aborted)" : "", " | ", Num(r.train_loss), " | ",
                    Num(r.mean_update_norm), " | ", Percent(r.clipped_fraction), " | ", Num(r.clip),
                    " | ", Num(r.epsilon), " | ", absl::StrFormat("%.1f", r.seconds), " | ",
                    GlobalPpl(r.eval_participants), " | ", GlobalPpl(r.eval_heldout), " |\n");
  }
  absl::StrAppend(md, "\n");
}

}  // namespace

std::string Num(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return absl::StrFormat("%.4g", v);
}

std::string Percent(double v) { return absl::StrFormat("%.1f%%", 100 * v); }

std::string RenderReportMarkdown(const Summary& summary, const std::vector<RoundRecord>& rounds,
                                 const PlotOutcome& plots) {
  std::string md = "# fedlora sim report\n\n";
  absl::StrAppend(&md, "Completed ", summary.rounds_completed, " of ",
                  ConfigText(summary.config, "rounds.rounds"), " rounds in ",
                  absl::StrFormat("%.1f", summary.seconds), " s. Stop reason: ",
                  summary.stop_reason.empty() ? "all rounds ran" : summary.stop_reason, ".\n\n");
  if (!summary.adapter_dir.empty()) {
    absl::StrAppend(&md, "Final global adapter (PEFT format): `", summary.adapter_dir, "`\n\n");
  }
  ResultsTable(summary, rounds, &md);
  PrivacySection(summary, &md);
  DropsSection(rounds, &md);
  RoundsTable(rounds, &md);
  absl::StrAppend(&md, "## Plots\n\n");
  const std::map<std::string, std::string> captions = {
      {"loss.png", "Training loss per round"},
      {"accuracy.png",
       "Keystroke savings and next-word top-3: base vs federated vs personalized from round 0, "
       "beside epsilon"},
      {"epsilon.png", "Cumulative epsilon per round, against observers and the coordinator"}};
  for (const std::string& image : plots.images) {
    const auto it = captions.find(image);
    absl::StrAppend(&md, "![", it == captions.end() ? image : it->second, "](", image, ")\n\n");
  }
  if (!plots.note.empty()) absl::StrAppend(&md, plots.note, "\n\n");
  absl::StrAppend(&md, "## Configuration\n\n```json\n",
                  summary.config.dump(2, ' ', false, nlohmann::json::error_handler_t::replace),
                  "\n```\n\n## Files\n\n"
                  "- `rounds.csv`, `rounds.jsonl`: one row / JSON object per round\n"
                  "- `summary.json`: this report's numbers\n");
  if (!plots.images.empty()) {
    absl::StrAppend(&md,
                    "- `plots.gp`, `plot_rounds.tsv`, `plot_eval.tsv`: rerun `gnuplot "
                    "plots.gp` here to redraw the plots\n");
  }
  return md;
}

}  // namespace fedlora::sim::internal
