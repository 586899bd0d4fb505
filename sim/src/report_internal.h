// Internals of the report writer shared by report.cc, report_markdown.cc and plots.cc.
#ifndef FEDLORA_SIM_REPORT_INTERNAL_H_
#define FEDLORA_SIM_REPORT_INTERNAL_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "fedlora/sim/report.h"
#include "nlohmann/json.hpp"

namespace fedlora::sim::internal {

// What DrawPlots produced: the PNG file names (relative to the output directory) and, when
// some or all plots were skipped, a sentence saying why (for report.md).
struct PlotOutcome {
  std::vector<std::string> images;
  std::string note;
};

// Draws loss.png, accuracy.png (when some round has an evaluation) and epsilon.png into
// `out_dir` with gnuplot, from the generated plots.gp, plot_rounds.tsv and plot_eval.tsv
// (kept, so a user can edit and rerun `gnuplot plots.gp` there). Never fails: a missing
// gnuplot or a failing run is reported in the note (gnuplot's output is in gnuplot.log).
PlotOutcome DrawPlots(const std::string& out_dir, const std::vector<RoundRecord>& rounds);

// The PNG terminal gnuplot offers ("pngcairo" or "png"), or "" when gnuplot cannot be run
// or has neither. Probed once per process.
const std::string& GnuplotPngTerminal();

// report.md: title, outcome, the base / federated / personalized table, privacy, drops,
// the rounds table, plots and the config echo.
std::string RenderReportMarkdown(const Summary& summary, const std::vector<RoundRecord>& rounds,
                                 const PlotOutcome& plots);

// An epsilon for JSON: the number, or null when it is unbounded (+inf).
nlohmann::json EpsilonJson(double epsilon);

// A number for tables: "%.4g", with "inf" / "nan" spelled out.
std::string Num(double v);
// A fraction as a percentage with one decimal ("23.4%").
std::string Percent(double v);

}  // namespace fedlora::sim::internal

#endif  // FEDLORA_SIM_REPORT_INTERNAL_H_
