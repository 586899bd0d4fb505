#include "fedlora/sim/report.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "fedlora/sim/sim_config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora::sim {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

// A fresh, empty directory under the test temp dir.
std::string FreshDir(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / absl::StrCat("report_test_", name);
  fs::remove_all(dir);
  return dir.string();
}

Metrics M(double ppl, double top1, double top3w, double keystrokes) {
  Metrics m;
  m.keystroke_savings = keystrokes;
  m.perplexity = ppl;
  m.next_token_top1 = top1;
  m.next_word_top3 = top3w;
  m.tokens = 1000;
  m.words = 200;
  return m;
}

EvalRecord Eval(const std::string& population, int users, double shift) {
  EvalRecord e;
  e.population = population;
  e.users = users;
  e.base = M(60 + shift, 0.20, 0.25, 0.30);
  e.global = M(40 + shift, 0.30, 0.375, 0.32);
  e.personalized = M(30 + shift, 0.35, 0.5, 0.34);
  return e;
}

RoundRecord Round(int round, bool eval) {
  RoundRecord r;
  r.round = round;
  r.sampled = 10;
  r.survivors = 10;
  r.train_loss = 4.0 - 0.25 * round;
  r.mean_update_norm = 0.8;
  r.clipped_fraction = 0.5;
  r.clip = 0.5;
  r.epsilon = 0.75 * round;
  r.epsilon_coordinator = 2.0 * round;
  r.seconds = 1.5;
  r.train_seconds = 1.0;
  r.privacy_seconds = 0.25;
  if (eval) {
    r.eval_participants = Eval("participants", 4, 0);
    r.eval_heldout = Eval("heldout", 3, 5);
  }
  return r;
}

// Three rounds: plain, with drops, aborted + evaluated.
std::vector<RoundRecord> SampleRounds() {
  std::vector<RoundRecord> rounds = {Round(1, false), Round(2, false), Round(3, true)};
  rounds[1].survivors = 7;
  rounds[1].dropped = {{17, "alice", "masked_input", "went offline"},
                       {3, "bob", "masked_input", "went offline"},
                       {5, "carol", "training", "missed the deadline"}};
  rounds[2].aborted = true;
  rounds[2].survivors = 0;
  rounds[2].abort_reason = "only 2 of 10 devices left, threshold 6";
  return rounds;
}

Summary SampleSummary() {
  SimConfig config;
  config.rounds = 3;
  config.cohort = 10;
  Summary s;
  s.config = ConfigToJson(config);
  s.rounds_completed = 3;
  s.epsilon = 2.25;
  s.epsilon_coordinator = 6.5;
  s.max_rounds_per_device = 3;
  s.delta = 1e-5;
  s.stop_reason = "";
  s.participants = Eval("participants", 4, 0);
  s.heldout = Eval("heldout", 3, 5);
  s.seconds = 4.5;
  s.adapter_dir = "out/adapter";
  return s;
}

TEST(ReportTest, RecordsToJson) {
  const RoundRecord r = SampleRounds()[1];
  const nlohmann::json j = r.ToJson();
  EXPECT_EQ(j["round"], 2);
  EXPECT_EQ(j["survivors"], 7);
  ASSERT_EQ(j["dropped"].size(), 3u);
  EXPECT_EQ(j["dropped"][0]["device"], 17);
  EXPECT_EQ(j["dropped"][0]["user"], "alice");
  EXPECT_EQ(j["dropped"][0]["phase"], "masked_input");
  EXPECT_FALSE(j.contains("eval_participants"));
  const nlohmann::json e = SampleRounds()[2].ToJson();
  EXPECT_EQ(e["eval_heldout"]["users"], 3);
  EXPECT_DOUBLE_EQ(e["eval_heldout"]["global"]["perplexity"].get<double>(), 45);
  EXPECT_DOUBLE_EQ(e["eval_participants"]["personalized"]["next_word_top3"].get<double>(), 0.5);
  EXPECT_EQ(e["eval_participants"]["base"]["tokens"], 1000);
  Summary s;
  EXPECT_TRUE(s.ToJson()["participants"].is_null());
}

TEST(ReportTest, WritesCsvAndJsonlPerRound) {
  const std::string dir = FreshDir("rows");
  auto writer = ReportWriter::Open(dir + "/nested");  // creates parents
  ASSERT_TRUE(writer.ok()) << writer.status();
  const std::vector<RoundRecord> rounds = SampleRounds();
  for (const RoundRecord& r : rounds) ASSERT_TRUE(writer->AppendRound(r).ok());

  const std::vector<std::string> csv = Lines(ReadAll(dir + "/nested/rounds.csv"));
  ASSERT_EQ(csv.size(), 1 + rounds.size());
  const std::vector<std::string> header = absl::StrSplit(csv[0], ',');
  EXPECT_THAT(header,
              testing::IsSupersetOf({"round", "sampled", "survivors", "aborted", "train_loss",
                                     "mean_update_norm", "clipped_fraction", "clip",
                                     "epsilon_observers", "epsilon_coordinator", "seconds",
                                     "participants_global_ppl", "heldout_personalized_top3w"}));
  for (size_t i = 1; i < csv.size(); ++i) {
    const std::vector<std::string> cells = absl::StrSplit(csv[i], ',');
    ASSERT_EQ(cells.size(), header.size()) << csv[i];
    EXPECT_EQ(cells[0], absl::StrCat(i));
  }
  auto col = [&](const std::string& name) {
    return std::find(header.begin(), header.end(), name) - header.begin();
  };
  const std::vector<std::string> row2 = absl::StrSplit(csv[2], ',');
  const std::vector<std::string> row3 = absl::StrSplit(csv[3], ',');
  EXPECT_EQ(row2[col("survivors")], "7");
  EXPECT_EQ(row2[col("participants_global_ppl")], "");  // not evaluated
  EXPECT_EQ(row3[col("aborted")], "1");
  EXPECT_EQ(row3[col("participants_global_ppl")], "40");
  EXPECT_EQ(row3[col("heldout_global_ppl")], "45");
  EXPECT_EQ(row3[col("participants_personalized_top3w")], "0.5");

  const std::vector<std::string> jsonl = Lines(ReadAll(dir + "/nested/rounds.jsonl"));
  ASSERT_EQ(jsonl.size(), rounds.size());
  for (size_t i = 0; i < rounds.size(); ++i) {
    EXPECT_EQ(nlohmann::json::parse(jsonl[i]), rounds[i].ToJson()) << i;
  }
}

TEST(ReportTest, OpenTruncatesPreviousRun) {
  const std::string dir = FreshDir("truncate");
  {
    auto w = ReportWriter::Open(dir);
    ASSERT_TRUE(w.ok());
    for (const RoundRecord& r : SampleRounds()) ASSERT_TRUE(w->AppendRound(r).ok());
  }
  auto w = ReportWriter::Open(dir);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(Lines(ReadAll(dir + "/rounds.csv")).size(), 1u);
  EXPECT_EQ(ReadAll(dir + "/rounds.jsonl"), "");
}

TEST(ReportTest, OpenFailsOnAFile) {
  const std::string dir = FreshDir("file");
  fs::create_directories(dir);
  std::ofstream(dir + "/x") << "not a directory";
  auto w = ReportWriter::Open(dir + "/x");
  EXPECT_FALSE(w.ok());
  EXPECT_THAT(w.status().message(), HasSubstr(dir + "/x"));
}

TEST(ReportTest, FullDiskNamesTheFile) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full on this system";
  const std::string dir = FreshDir("full");
  auto w = ReportWriter::Open(dir);
  ASSERT_TRUE(w.ok());
  fs::remove(dir + "/rounds.csv");
  fs::create_symlink("/dev/full", dir + "/rounds.csv");
  const absl::Status s = w->AppendRound(Round(1, false));
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(), AllOf(HasSubstr("rounds.csv"), HasSubstr("hint")));
}

bool IsPng(const fs::path& p) {
  const std::string data = ReadAll(p);
  return data.size() > 8 && data.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0;
}

TEST(ReportTest, FinishWritesSummaryPlotsAndReport) {
  const std::string dir = FreshDir("finish");
  auto w = ReportWriter::Open(dir);
  ASSERT_TRUE(w.ok());
  for (const RoundRecord& r : SampleRounds()) ASSERT_TRUE(w->AppendRound(r).ok());
  const Summary summary = SampleSummary();
  ASSERT_TRUE(w->Finish(summary).ok());

  EXPECT_EQ(nlohmann::json::parse(ReadAll(dir + "/summary.json")), summary.ToJson());

  // gnuplot-nox is part of the build dependencies: plots are required, not optional.
  for (const char* png : {"loss.png", "accuracy.png", "epsilon.png"}) {
    EXPECT_TRUE(IsPng(fs::path(dir) / png))
        << png << " missing or not a PNG (is gnuplot installed? apt-get install gnuplot-nox); "
        << ReadAll(fs::path(dir) / "gnuplot.log");
  }

  const std::string md = ReadAll(dir + "/report.md");
  EXPECT_THAT(md, HasSubstr("# fedlora sim report"));
  EXPECT_THAT(md, HasSubstr("Completed 3 of 3 rounds"));
  EXPECT_THAT(md, HasSubstr("all rounds ran"));
  EXPECT_THAT(md, HasSubstr("Last evaluation (after round 3)"));
  // The final base / federated / personalized table.
  EXPECT_THAT(md, HasSubstr("| participants (4) | base | 60 | 20.0% | 25.0% |"));
  EXPECT_THAT(md, HasSubstr("| participants (4) | federated | 40 | 30.0% | 37.5% |"));
  EXPECT_THAT(md, HasSubstr("| participants (4) | personalized | 30 | 35.0% | 50.0% |"));
  EXPECT_THAT(md, HasSubstr("| held-out (3) | base | 65 | 20.0% | 25.0% |"));
  EXPECT_THAT(md, HasSubstr("| held-out (3) | personalized | 35 | 35.0% | 50.0% |"));
  // Privacy, drops, rounds, plots, config, adapter.
  EXPECT_THAT(md, HasSubstr("| epsilon against observers of the released adapters | 2.25 |"));
  EXPECT_THAT(md, HasSubstr("| epsilon against the coordinator (worst device, 3 rounds, no "
                            "amplification) | 6.5 |"));
  EXPECT_THAT(md, HasSubstr("| delta | 1e-05 |"));
  EXPECT_THAT(md, HasSubstr("| differential privacy | distributed |"));
  EXPECT_THAT(md, HasSubstr("3 drops over 3 rounds; aborted rounds (no update applied): 1."));
  EXPECT_THAT(md, HasSubstr("| masked_input | 2 |"));
  EXPECT_THAT(md, HasSubstr("| training | 1 |"));
  EXPECT_THAT(md, HasSubstr("device 17 (user alice) in masked_input: went offline"));
  EXPECT_THAT(md, HasSubstr("round 3 aborted: only 2 of 10 devices left"));
  EXPECT_THAT(md, HasSubstr("| 2 | 10 | 7 | 3.5 |"));
  EXPECT_THAT(md, HasSubstr("| 3 | 10 | 0 (aborted) |"));
  EXPECT_THAT(md, HasSubstr("](loss.png)"));
  EXPECT_THAT(md, HasSubstr("](accuracy.png)"));
  EXPECT_THAT(md, HasSubstr("](epsilon.png)"));
  EXPECT_THAT(md, HasSubstr("\"rounds.cohort\": 10"));
  EXPECT_THAT(md, HasSubstr("`out/adapter`"));
}

// accuracy.png reads from round 0 (the base) and shows keystroke savings and next-word top-3 of
// every variant, both epsilons beside them, and its key in a cell of its own.
TEST(ReportTest, AccuracyPlotStartsAtRoundZeroWithKeystrokeSavings) {
  const std::string dir = FreshDir("accuracy");
  auto w = ReportWriter::Open(dir);
  ASSERT_TRUE(w.ok());
  for (const RoundRecord& r : SampleRounds()) ASSERT_TRUE(w->AppendRound(r).ok());
  ASSERT_TRUE(w->Finish(SampleSummary()).ok());

  const std::vector<std::string> eval = Lines(ReadAll(fs::path(dir) / "plot_eval.tsv"));
  ASSERT_EQ(eval.size(), 3u);  // header, round 0, round 3 (the only evaluated round)
  const std::vector<std::string> header = absl::StrSplit(eval[0], ' ');
  const auto column = [&](const std::string& name) {
    const auto it = std::find(header.begin(), header.end(), name);
    EXPECT_NE(it, header.end()) << name << " not in " << eval[0];
    return static_cast<int>(it - header.begin());  // header[0] is "#": 1-based data column
  };
  const std::vector<std::string> zero = absl::StrSplit(eval[1], ' ');
  const std::vector<std::string> three = absl::StrSplit(eval[2], ' ');
  ASSERT_EQ(zero.size(), header.size() - 1);
  EXPECT_EQ(zero[0], "0");
  EXPECT_EQ(three[0], "3");
  // Round 0: the base, which is also the federated model before any release; no
  // personalization yet.
  EXPECT_EQ(zero[column("participants.base.keystroke_savings") - 1], "0.3");
  EXPECT_EQ(zero[column("participants.federated.keystroke_savings") - 1], "0.3");
  EXPECT_EQ(zero[column("participants.personalized.keystroke_savings") - 1], "NaN");
  EXPECT_EQ(zero[column("heldout.federated.next_word_top3") - 1], "0.25");
  EXPECT_EQ(three[column("participants.personalized.keystroke_savings") - 1], "0.34");
  EXPECT_EQ(three[column("heldout.federated.next_word_top3") - 1], "0.375");

  const std::string gp = ReadAll(fs::path(dir) / "plots.gp");
  const size_t accuracy = gp.find("set output 'accuracy.png'");
  ASSERT_NE(accuracy, std::string::npos) << gp;
  const std::string figure = gp.substr(accuracy);
  for (const char* variant : {"base", "federated", "personalized"}) {
    for (const char* population : {"participants", "heldout"}) {
      for (const char* metric : {"keystroke_savings", "next_word_top3"}) {
        const int col = column(absl::StrCat(population, ".", variant, ".", metric));
        EXPECT_THAT(figure, HasSubstr(absl::StrCat("'plot_eval.tsv' using 1:($", col, "*100)")))
            << population << " " << variant << " " << metric;
      }
    }
  }
  EXPECT_THAT(figure, HasSubstr("keystroke savings (%)"));
  EXPECT_THAT(figure, HasSubstr("next-word top-3 (%)"));
  // Both epsilons, from round 0.
  EXPECT_THAT(figure, HasSubstr("'plot_rounds.tsv' using 1:3"));
  EXPECT_THAT(figure, HasSubstr("'plot_rounds.tsv' using 1:4"));
  const std::vector<std::string> rounds = Lines(ReadAll(fs::path(dir) / "plot_rounds.tsv"));
  ASSERT_GE(rounds.size(), 2u);
  EXPECT_EQ(rounds[0], "# round train_loss epsilon epsilon_coordinator clip");
  EXPECT_EQ(rounds[1], "0 NaN 0 0 NaN");
  EXPECT_THAT(rounds.back(), HasSubstr("3 3.25 2.25 6 "));
  // The key is drawn after every data panel, in a cell of its own.
  const size_t key = figure.find("\nset key");
  ASSERT_NE(key, std::string::npos);
  EXPECT_GT(key, figure.rfind("'plot_eval.tsv'"));
  EXPECT_GT(key, figure.rfind("'plot_rounds.tsv'"));
}

TEST(ReportTest, StopReasonAndNoEvaluation) {
  const std::string dir = FreshDir("stop");
  auto w = ReportWriter::Open(dir);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(w->AppendRound(Round(1, false)).ok());
  Summary s = SampleSummary();
  s.rounds_completed = 1;
  s.participants.reset();
  s.heldout.reset();
  s.stop_reason = "epsilon budget 1 would be exceeded in round 2";
  ASSERT_TRUE(w->Finish(s).ok());
  const std::string md = ReadAll(dir + "/report.md");
  EXPECT_THAT(md, HasSubstr("Completed 1 of 3 rounds"));
  EXPECT_THAT(md, HasSubstr("Stop reason: epsilon budget 1 would be exceeded in round 2."));
  EXPECT_THAT(md, HasSubstr("No evaluation was run."));
  EXPECT_THAT(md, HasSubstr("No accuracy plot"));
  EXPECT_TRUE(IsPng(fs::path(dir) / "loss.png"));
  EXPECT_FALSE(fs::exists(fs::path(dir) / "accuracy.png"));
}

TEST(ReportTest, PlotsOffByConfig) {
  const std::string dir = FreshDir("noplots");
  auto w = ReportWriter::Open(dir);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(w->AppendRound(Round(1, true)).ok());
  Summary s = SampleSummary();
  s.config["output.plots"] = false;
  ASSERT_TRUE(w->Finish(s).ok());
  EXPECT_FALSE(fs::exists(fs::path(dir) / "loss.png"));
  EXPECT_THAT(ReadAll(dir + "/report.md"),
              AllOf(HasSubstr("output.plots = false"), Not(HasSubstr("](loss.png)"))));
}

TEST(ReportTest, LongRunsGetACompactRoundsTable) {
  const std::string dir = FreshDir("long");
  auto w = ReportWriter::Open(dir);
  ASSERT_TRUE(w.ok());
  for (int i = 1; i <= 200; ++i) ASSERT_TRUE(w->AppendRound(Round(i, i % 50 == 0)).ok());
  ASSERT_TRUE(w->Finish(SampleSummary()).ok());
  EXPECT_EQ(Lines(ReadAll(dir + "/rounds.csv")).size(), 201u);
  const std::string md = ReadAll(dir + "/report.md");
  const size_t start = md.find("## Rounds");
  const size_t end = md.find("## Plots");
  ASSERT_NE(start, std::string::npos);
  int rows = 0;
  for (const std::string& line : Lines(md.substr(start, end - start))) {
    if (absl::StartsWith(line, "| ") && !absl::StartsWith(line, "| round")) ++rows;
  }
  EXPECT_GE(rows, 30);
  EXPECT_LE(rows, 40);
  EXPECT_THAT(md, HasSubstr("| 200 | 10 |"));  // the last round is always shown
  EXPECT_THAT(md, HasSubstr("| 150 | 10 |"));  // evaluated rounds are always shown
}

// Without gnuplot on PATH the report still gets written and says why there are no plots.
// Runs in a re-executed child so that PATH and the cached gnuplot probe stay private.
TEST(ReportDeathTest, MissingGnuplotIsExplained) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const std::string dir = FreshDir("nognuplot");
  EXPECT_EXIT(
      {
        setenv("PATH", "/nonexistent", 1);
        auto w = ReportWriter::Open(dir);
        if (!w.ok() || !w->AppendRound(Round(1, true)).ok()) std::_Exit(2);
        if (!w->Finish(SampleSummary()).ok()) std::_Exit(3);
        const std::string md = ReadAll(dir + "/report.md");
        if (!absl::StrContains(md, "gnuplot") || absl::StrContains(md, "](loss.png)")) {
          std::_Exit(4);
        }
        std::_Exit(fs::exists(fs::path(dir) / "loss.png") ? 5 : 0);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace fedlora::sim
