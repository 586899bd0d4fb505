// `fedlora data stats` and `fedlora data personas`: inspect federated datasets and write the
// synthetic keyboard personas as per-user text files.
#include <chrono>
#include <iostream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli_common.h"
#include "fedlora/common/file_util.h"
#include "fedlora/data/dataset.h"
#include "fedlora/data/load.h"
#include "fedlora/data/personas.h"

namespace fedlora::cli {
namespace {

struct StatsArgs {
  std::string data = "personas";
  std::string format = "auto";
  int min_lines = 0;
  double test_fraction = 0.2;
  int max_users = 0;
  bool json = false;
};

void RunStats(const StatsArgs& a) {
  auto format = data::ParseDataFormat(a.format);
  if (!format.ok()) return static_cast<void>(Fail(format.status()));
  data::LoadOptions opt;
  opt.format = *format;
  opt.min_lines = a.min_lines;
  opt.test_fraction = a.test_fraction;
  opt.max_users = a.max_users;
  const auto start = std::chrono::steady_clock::now();
  auto ds = data::LoadFederatedDataset(a.data, opt);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  if (!ds.ok()) return static_cast<void>(Fail(ds.status()));
  const data::DatasetStats s = data::ComputeStats(*ds);
  if (a.json) {
    PrintJson({{"source", ds->source},
               {"users", s.users},
               {"train_lines", s.train_lines},
               {"test_lines", s.test_lines},
               {"chars", s.chars},
               {"min_lines_per_user", s.min_lines_per_user},
               {"median_lines_per_user", s.median_lines_per_user},
               {"max_lines_per_user", s.max_lines_per_user},
               {"load_ms", ms}});
    return;
  }
  std::cout << absl::StrFormat(
      "source            %s\n"
      "users             %d\n"
      "lines             %d train, %d test\n"
      "chars             %d\n"
      "lines per user    min %d, median %g, max %d\n"
      "load time         %.1f ms\n",
      ds->source, s.users, s.train_lines, s.test_lines, s.chars, s.min_lines_per_user,
      s.median_lines_per_user, s.max_lines_per_user, ms);
}

struct PersonasArgs {
  std::string out;
  int users = 200;
  uint64_t seed = 1;
  int lines_per_user = 60;
  std::string public_out;
  int public_lines = 5000;
  bool json = false;
};

void RunPersonas(const PersonasArgs& a) {
  data::PersonaOptions opt;
  opt.users = a.users;
  opt.seed = a.seed;
  opt.lines_per_user = a.lines_per_user;
  if (auto s = MakeDirs(a.out); !s.ok()) return static_cast<void>(Fail(s));
  const data::FederatedDataset ds = data::GeneratePersonas(opt);
  for (const data::UserData& u : ds.users) {
    // Train lines then test lines: reloading the directory with the same test fraction gives
    // back the same split.
    std::string text = data::UserTrainText(u);
    if (!u.test.empty()) absl::StrAppend(&text, "\n", data::UserTestText(u));
    text += "\n";
    auto s = WriteFileAtomic(absl::StrCat(a.out, "/", u.id, ".txt"), text);
    if (!s.ok()) return static_cast<void>(Fail(s));
  }
  if (!a.public_out.empty()) {
    auto s = WriteFileAtomic(a.public_out, data::PublicCorpus(opt, a.public_lines) + "\n");
    if (!s.ok()) return static_cast<void>(Fail(s));
  }
  const data::DatasetStats st = data::ComputeStats(ds);
  if (a.json) {
    PrintJson({{"out", a.out},
               {"source", ds.source},
               {"users", st.users},
               {"lines", st.train_lines + st.test_lines},
               {"public_out", a.public_out},
               {"public_lines", a.public_out.empty() ? 0 : a.public_lines}});
    return;
  }
  std::cout << "wrote " << st.users << " personas (" << st.train_lines + st.test_lines
            << " lines) to " << a.out << "/\n";
  if (!a.public_out.empty()) {
    std::cout << "wrote " << a.public_lines << " public lines to " << a.public_out << "\n";
  }
}

}  // namespace

void RegisterCommand_data(CLI::App& app) {
  auto* data = app.add_subcommand("data", "inspect federated datasets, write synthetic personas");
  data->require_subcommand(1);

  auto stats_args = std::make_shared<StatsArgs>();
  auto* stats = data->add_subcommand("stats", "load a federated dataset and print its figures");
  stats
      ->add_option("--data", stats_args->data,
                   "directory, *.jsonl, *.tsv, play *.txt, or personas[:users=N,seed=S,lines=L]")
      ->capture_default_str();
  stats
      ->add_option("--data-format", stats_args->format,
                   "auto, dir, jsonl, shakespeare-tsv, play-text, personas")
      ->capture_default_str();
  stats->add_option("--min-lines", stats_args->min_lines, "drop users with fewer lines")
      ->capture_default_str();
  stats->add_option("--test-fraction", stats_args->test_fraction, "per-user test split, [0, 1)")
      ->capture_default_str();
  stats->add_option("--max-users", stats_args->max_users, "keep the first N users (0 = all)")
      ->capture_default_str();
  stats->add_flag("--json", stats_args->json, "print one JSON object");
  stats->callback([stats_args] { RunStats(*stats_args); });

  auto p_args = std::make_shared<PersonasArgs>();
  auto* personas = data->add_subcommand(
      "personas", "write the synthetic keyboard personas as <out>/<persona>.txt files");
  personas->add_option("--out", p_args->out, "output directory")->required();
  personas->add_option("--users", p_args->users, "number of personas")
      ->capture_default_str()
      ->check(AtLeast(0));
  personas->add_option("--seed", p_args->seed, "generator seed")->capture_default_str();
  personas->add_option("--lines-per-user", p_args->lines_per_user, "messages per persona")
      ->capture_default_str()
      ->check(AtLeast(0));
  personas->add_option("--public-out", p_args->public_out,
                       "also write the public general-language corpus to this file");
  personas->add_option("--public-lines", p_args->public_lines, "lines of public corpus")
      ->capture_default_str()
      ->check(AtLeast(0));
  personas->add_flag("--json", p_args->json, "print one JSON object");
  personas->callback([p_args] { RunPersonas(*p_args); });
}

}  // namespace fedlora::cli
