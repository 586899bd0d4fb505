// The report's PNG plots, drawn by running gnuplot on a generated script and data files.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "fedlora/common/file_util.h"
#include "report_internal.h"

extern char** environ;

namespace fedlora::sim::internal {
namespace {

// Runs `args` (args[0] looked up in PATH) in directory `cwd` (empty = ours), with stdout and
// stderr appended to `log_path`. Returns the exit code, 127 when the program cannot be
// started, 128 + signal when it was killed.
int RunProgram(const std::vector<std::string>& args, const std::string& cwd,
               const std::string& log_path) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (!cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return 127;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return 127;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// A cell for gnuplot data files; NaN marks "no value" (gnuplot skips the point).
std::string Cell(double v) { return std::isfinite(v) ? absl::StrFormat("%.8g", v) : "NaN"; }

// The model variants every evaluation reports, in plot order, with their colours.
struct Variant {
  const char* name;
  const char* color;
  const Metrics EvalRecord::*metrics;
};
constexpr Variant kVariants[] = {{"base", "#808080", &EvalRecord::base},
                                 {"federated", "#1f77b4", &EvalRecord::global},
                                 {"personalized", "#d62728", &EvalRecord::personalized}};
constexpr int kNumVariants = sizeof(kVariants) / sizeof(kVariants[0]);

// The metrics in plot_eval.tsv; the first kPlottedMetrics are drawn in accuracy.png.
struct MetricColumn {
  const char* key;    // column name in the data file's header
  const char* label;  // y axis label
  double Metrics::*value;
};
constexpr MetricColumn kMetrics[] = {
    {"keystroke_savings", "keystroke savings (%)", &Metrics::keystroke_savings},
    {"next_word_top3", "next-word top-3 (%)", &Metrics::next_word_top3},
    {"next_token_top1", "next-token top-1 (%)", &Metrics::next_token_top1}};
constexpr int kNumMetrics = sizeof(kMetrics) / sizeof(kMetrics[0]);
constexpr int kPlottedMetrics = 2;

// The populations, each a panel column of accuracy.png.
struct Population {
  const char* name;
  const std::optional<EvalRecord> RoundRecord::*eval;
};
constexpr Population kPopulations[] = {{"participants", &RoundRecord::eval_participants},
                                       {"heldout", &RoundRecord::eval_heldout}};

// plot_eval.tsv column (1-based; column 1 is the round) of one population, metric, variant.
int EvalColumn(int population, int metric, int variant) {
  return 2 + (population * kNumMetrics + metric) * kNumVariants + variant;
}

// One row: the round, then per population, metric and variant (EvalColumn) the value.
void AppendEvalRow(int round, const std::optional<EvalRecord>* evals[2], bool round_zero,
                   std::string* s) {
  absl::StrAppend(s, round);
  for (int p = 0; p < 2; ++p) {
    for (const MetricColumn& m : kMetrics) {
      for (int v = 0; v < kNumVariants; ++v) {
        double value = std::nan("");
        if (evals[p]->has_value()) {
          const EvalRecord& e = **evals[p];
          // Round 0: nothing released yet. The base is what every device starts from, and the
          // global adapter starts with B = 0, so the federated model is the base; nobody has
          // personalized yet.
          if (!round_zero) {
            value = (e.*(kVariants[v].metrics)).*(m.value);
          } else if (kVariants[v].metrics != &EvalRecord::personalized) {
            value = e.base.*(m.value);
          }
        }
        absl::StrAppend(s, " ", Cell(value));
      }
    }
  }
  absl::StrAppend(s, "\n");
}

// One row per evaluated round, led by round 0 (the base, from the first evaluation).
std::string EvalData(const std::vector<RoundRecord>& rounds) {
  std::string s = "# round";
  for (const Population& p : kPopulations) {
    for (const MetricColumn& m : kMetrics) {
      for (const Variant& v : kVariants) absl::StrAppend(&s, " ", p.name, ".", v.name, ".", m.key);
    }
  }
  absl::StrAppend(&s, "\n");
  bool first = true;
  for (const RoundRecord& r : rounds) {
    const std::optional<EvalRecord>* evals[2] = {&(r.*(kPopulations[0].eval)),
                                                 &(r.*(kPopulations[1].eval))};
    if (!evals[0]->has_value() && !evals[1]->has_value()) continue;
    if (first) AppendEvalRow(0, evals, /*round_zero=*/true, &s);
    first = false;
    AppendEvalRow(r.round, evals, /*round_zero=*/false, &s);
  }
  return s;
}

// One row per round, led by round 0 (nothing released, nothing spent): round, train loss,
// epsilon against observers, epsilon against the coordinator (NaN when unbounded), clip.
std::string RoundsData(const std::vector<RoundRecord>& rounds) {
  std::string s = "# round train_loss epsilon epsilon_coordinator clip\n";
  const bool coordinator_bounded = std::isfinite(rounds.front().epsilon_coordinator);
  absl::StrAppend(&s, "0 NaN 0 ", coordinator_bounded ? "0" : "NaN", " NaN\n");
  for (const RoundRecord& r : rounds) {
    // An aborted round trained nothing that was kept: no loss point.
    const double loss = r.aborted && r.train_loss == 0 ? std::nan("") : r.train_loss;
    absl::StrAppend(&s, r.round, " ", Cell(loss), " ", Cell(r.epsilon), " ",
                    Cell(r.epsilon_coordinator), " ", Cell(r.clip), "\n");
  }
  return s;
}

// The y range "[lo:hi]" in percent that holds every value of `metric` in both populations
// (so that participants and held-out users read on the same scale), padded.
std::string PercentRange(const std::vector<RoundRecord>& rounds, int metric) {
  double lo = INFINITY, hi = -INFINITY;
  for (const RoundRecord& r : rounds) {
    for (const Population& p : kPopulations) {
      const std::optional<EvalRecord>& e = r.*(p.eval);
      if (!e) continue;
      for (const Variant& v : kVariants) {
        const double x = 100 * ((*e).*(v.metrics)).*(kMetrics[metric].value);
        if (!std::isfinite(x)) continue;
        lo = std::min(lo, x);
        hi = std::max(hi, x);
      }
    }
  }
  if (!std::isfinite(lo)) return "[*:*]";
  const double pad = std::max(0.5, 0.1 * (hi - lo));
  return absl::StrFormat("[%.3g:%.3g]", std::max(0.0, lo - pad), std::min(100.0, hi + pad));
}

// Users evaluated in a population (the last evaluation's count), for panel titles.
int EvaluatedUsers(const std::vector<RoundRecord>& rounds, int population) {
  for (auto it = rounds.rbegin(); it != rounds.rend(); ++it) {
    const std::optional<EvalRecord>& e = (*it).*(kPopulations[population].eval);
    if (e) return e->users;
  }
  return 0;
}

constexpr char kEpsObserversColor[] = "#2ca02c";
constexpr char kEpsCoordinatorColor[] = "#9467bd";

// The two epsilon curves from plot_rounds.tsv, titled (or untitled, for panels without a key).
std::string EpsilonCurves(const std::string& style, bool titled, bool coordinator_bounded) {
  const auto title = [&](const char* t) {
    return titled ? absl::StrCat("title '", t, "'") : std::string("notitle");
  };
  std::string s = absl::StrCat("'plot_rounds.tsv' using 1:3 with ", style, " lc rgb '",
                               kEpsObserversColor, "' ",
                               title("epsilon against observers of the releases"));
  if (coordinator_bounded) {
    absl::StrAppend(&s, ", \\\n     'plot_rounds.tsv' using 1:4 with ", style, " lc rgb '",
                    kEpsCoordinatorColor, "' dt 2 ",
                    title("epsilon against the coordinator (worst device)"));
  }
  return s;
}

// accuracy.png: a 2 x 3 grid. Columns: participants, held-out users, privacy; rows: keystroke
// savings, next-word top-3 (both populations on the same scale). The privacy column holds the
// epsilon curves on top and the key of every panel below, so no key covers data.
std::string AccuracyFigure(const std::vector<RoundRecord>& rounds, const std::string& style,
                           bool coordinator_bounded) {
  std::string s = absl::StrCat(
      "set output 'accuracy.png'\n",
      "set multiplot layout 2,3 columnsfirst title 'Base vs federated vs personalized, from "
      "round 0 (the base), with privacy spent' font ',13'\n",
      "unset key\n");
  // columnsfirst: participants (2 rows), held-out (2 rows), then epsilon and the key.
  for (int p = 0; p < 2; ++p) {
    const std::string who = p == 0 ? absl::StrCat("participants (", EvaluatedUsers(rounds, 0), " users)")
                                   : absl::StrCat("held-out (", EvaluatedUsers(rounds, 1), " users)");
    for (int m = 0; m < kPlottedMetrics; ++m) {
      std::vector<std::string> curves;
      for (int v = 0; v < kNumVariants; ++v) {
        curves.push_back(absl::StrFormat(
            "'plot_eval.tsv' using 1:($%d*100) with linespoints lc rgb '%s' dt %d pt 7 ps 0.8 "
            "lw 2 notitle",
            EvalColumn(p, m, v), kVariants[v].color, v == 0 ? 2 : 1));
      }
      absl::StrAppend(&s, "set title '", who, "'\nset ylabel '", kMetrics[m].label,
                      "'\nset yrange ", PercentRange(rounds, m), "\nplot ",
                      absl::StrJoin(curves, ", \\\n     "), "\n");
    }
  }
  absl::StrAppend(&s, "set title 'privacy spent (cumulative, per round)'\nset ylabel 'epsilon'\n",
                  "set yrange [0:*]\nplot ", EpsilonCurves(style, false, coordinator_bounded),
                  "\n");
  // The key cell: the same styles drawn on no data, framed by nothing.
  std::vector<std::string> keys;
  for (int v = 0; v < kNumVariants; ++v) {
    keys.push_back(absl::StrFormat("NaN with linespoints lc rgb '%s' dt %d pt 7 lw 2 title '%s'",
                                   kVariants[v].color, v == 0 ? 2 : 1,
                                   v == 0   ? "base (the pretrained model)"
                                   : v == 1 ? "federated (global adapter; the base at round 0)"
                                            : "personalized (rounds.personalize, on the device)"));
  }
  keys.push_back(absl::StrFormat("NaN with lines lc rgb '%s' lw 2 title '%s'", kEpsObserversColor,
                                 "epsilon vs observers of the releases"));
  keys.push_back(absl::StrFormat(
      "NaN with lines lc rgb '%s' dt 2 lw 2 title '%s'", kEpsCoordinatorColor,
      coordinator_bounded ? "epsilon vs the coordinator (worst device)"
                          : "epsilon vs the coordinator: unbounded (central DP)"));
  absl::StrAppend(&s, "unset title\nunset xlabel\nunset ylabel\nunset border\nunset tics\n",
                  "unset grid\nset xrange [0:1]\nset yrange [0:1]\n",
                  "set key center center Left reverse samplen 3 spacing 1.4 font ',10'\n",
                  "plot ", absl::StrJoin(keys, ", \\\n     "), "\n",
                  "unset multiplot\nset border\nset tics\nset grid\nunset key\n");
  return s;
}

std::string Script(const std::string& terminal, const std::vector<RoundRecord>& rounds,
                   bool evaluated) {
  const int last_round = rounds.back().round;
  const bool coordinator_bounded = std::isfinite(rounds.front().epsilon_coordinator);
  // Points help to read a few rounds and clutter many.
  const std::string style = last_round <= 60 ? "linespoints pt 7 lw 2" : "lines lw 2";
  std::string s =
      absl::StrCat("# Generated by fedlora sim; rerun with: gnuplot plots.gp\n", "set terminal ",
                   terminal, " size 960,540\n", "set grid\nset key top left\nset xlabel 'round'\n",
                   "set xrange [0:", std::max(last_round, 1), "]\n");
  absl::StrAppend(&s, "set output 'loss.png'\nset title 'Mean local training loss'\n",
                  "set ylabel 'loss (nats/token)'\n", "plot 'plot_rounds.tsv' using 1:2 with ",
                  style, " title 'train loss'\n");
  absl::StrAppend(&s, "set output 'epsilon.png'\nset title 'Privacy: cumulative epsilon'\n",
                  "set ylabel 'epsilon'\nset yrange [0:*]\nplot ",
                  EpsilonCurves(style, true, coordinator_bounded), "\nset autoscale y\n");
  if (evaluated) {
    absl::StrAppend(&s, "set terminal ", terminal, " size 1280,720\n",
                    AccuracyFigure(rounds, style, coordinator_bounded));
  }
  absl::StrAppend(&s, "unset output\n");
  return s;
}

}  // namespace

const std::string& GnuplotPngTerminal() {
  static const std::string* terminal = [] {
    for (const char* t : {"pngcairo", "png"}) {
      if (RunProgram({"gnuplot", "-e", absl::StrCat("set terminal ", t)}, "", "/dev/null") == 0) {
        return new std::string(t);
      }
    }
    return new std::string();
  }();
  return *terminal;
}

PlotOutcome DrawPlots(const std::string& out_dir, const std::vector<RoundRecord>& rounds) {
  PlotOutcome out;
  if (rounds.empty()) {
    out.note = "No plots: no round completed.";
    return out;
  }
  const std::string& terminal = GnuplotPngTerminal();
  if (terminal.empty()) {
    out.note =
        "Plots skipped: gnuplot (with a png or pngcairo terminal) was not found "
        "(hint: apt-get install gnuplot-nox; the numbers are in rounds.csv).";
    return out;
  }
  bool participants = false, heldout = false;
  for (const RoundRecord& r : rounds) {
    participants |= r.eval_participants.has_value();
    heldout |= r.eval_heldout.has_value();
  }
  const std::string dir = std::filesystem::absolute(out_dir).string();
  for (const auto& [name, data] :
       {std::pair<const char*, std::string>{"plot_rounds.tsv", RoundsData(rounds)},
        {"plot_eval.tsv", EvalData(rounds)},
        {"plots.gp", Script(terminal, rounds, participants || heldout)}}) {
    if (absl::Status s = WriteFileAtomic(absl::StrCat(dir, "/", name), data); !s.ok()) {
      out.note = absl::StrCat("Plots skipped: ", s.message());
      return out;
    }
  }
  const std::string log = absl::StrCat(dir, "/gnuplot.log");
  std::error_code ec;
  std::filesystem::remove(log, ec);
  std::vector<std::string> expected = {"loss.png"};
  if (participants || heldout) expected.push_back("accuracy.png");
  expected.push_back("epsilon.png");
  for (const char* png : {"loss.png", "accuracy.png", "epsilon.png"}) {  // stale from a rerun
    std::filesystem::remove(absl::StrCat(dir, "/", png), ec);
  }
  const int rc = RunProgram({"gnuplot", "plots.gp"}, dir, log);
  for (const std::string& png : expected) {
    if (std::filesystem::exists(absl::StrCat(dir, "/", png))) out.images.push_back(png);
  }
  if (rc != 0 || out.images.size() != expected.size()) {
    out.note = absl::StrCat("gnuplot failed (exit code ", rc,
                            "); some plots may be missing (see gnuplot.log).");
  } else {
    if (std::filesystem::file_size(log, ec) == 0 && !ec) std::filesystem::remove(log, ec);
    if (!participants && !heldout) out.note = "No accuracy plot: no round was evaluated.";
  }
  return out;
}

}  // namespace fedlora::sim::internal
