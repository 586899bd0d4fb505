// `fedlora sim` checks everything before it writes: a bad config or a taken --out never
// touches an earlier run's files, and an unwritable --out fails before any training.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testutil/cli_runner.h"

namespace fedlora::sim {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

struct CliRun {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

CliRun Fedlora(const std::string& args) {
  const testing::CliResult r = testing::RunFedlora(args, fs::temp_directory_path().string());
  return {r.exit_code, r.out + r.err};
}

std::string Slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

fs::path FreshDir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / (name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

fs::path EarlierRun(const std::string& name) {
  fs::path d = FreshDir(name);
  std::ofstream(d / "rounds.csv") << "round,sampled\n1,50\n";
  std::ofstream(d / "summary.json") << "{\"epsilon\": 7.9}\n";
  return d;
}

TEST(CliSimTest, BadConfigLeavesAnEarlierRunByteIdentical) {
  const fs::path d = EarlierRun("fedlora_cli_sim_badcfg");
  const std::string before_csv = Slurp(d / "rounds.csv"), before_json = Slurp(d / "summary.json");
  for (const char* force : {"", " --force"}) {
    CliRun r = Fedlora("sim --threads 1 --set rounds.cohort=-1 --out " + d.string() + force);
    EXPECT_NE(r.exit_code, 0) << r.output;
    EXPECT_THAT(r.output, HasSubstr("rounds.cohort"));
    EXPECT_EQ(Slurp(d / "rounds.csv"), before_csv);
    EXPECT_EQ(Slurp(d / "summary.json"), before_json);
    EXPECT_FALSE(fs::exists(d / "rounds.jsonl"));
  }
  fs::remove_all(d);
}

TEST(CliSimTest, AnEarlierRunIsNotOverwrittenWithoutForce) {
  const fs::path d = EarlierRun("fedlora_cli_sim_taken");
  const std::string before = Slurp(d / "rounds.csv");
  CliRun r = Fedlora("sim --out " + d.string());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("earlier run"));
  EXPECT_THAT(r.output, HasSubstr("--force"));
  EXPECT_THAT(r.output, ::testing::Not(HasSubstr("preparing model")));  // refused before work
  EXPECT_EQ(Slurp(d / "rounds.csv"), before);
  fs::remove_all(d);
}

TEST(CliSimTest, UnwritableOutFailsBeforeAnyTraining) {
  const fs::path d = FreshDir("fedlora_cli_sim_unwritable");
  std::ofstream(d / "a_file") << "x";
  const std::string out = (d / "a_file" / "sub").string();  // a path under a regular file
  CliRun r = Fedlora("sim --out " + out);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr(out));
  EXPECT_THAT(r.output, ::testing::Not(HasSubstr("preparing model")));
  fs::remove_all(d);
}

// A misspelt FEDLORA_FLOAT_GEMM is refused before any work, naming the value and the choices.
TEST(CliSimTest, AMisspeltFloatGemmIsRefusedBeforeAnyWork) {
  const fs::path d = FreshDir("fedlora_cli_sim_float_gemm");
  ::setenv("FEDLORA_FLOAT_GEMM", "OpenBLAS", 1);  // the child inherits it
  CliRun r = Fedlora("sim --out " + (d / "out").string());
  ::unsetenv("FEDLORA_FLOAT_GEMM");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("FEDLORA_FLOAT_GEMM='OpenBLAS' is not one of auto, openblas"));
  EXPECT_THAT(r.output, ::testing::Not(HasSubstr("preparing model")));
  EXPECT_FALSE(fs::exists(d / "out"));
  fs::remove_all(d);
}

TEST(CliSimTest, PrintConfigShowsEveryKeyAndTheExampleConfigIsValid) {
  CliRun r = Fedlora("sim --print-config --set rounds.rounds=7 --cohort 12");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("[rounds]"));
  EXPECT_THAT(r.output, HasSubstr("rounds = 7"));
  EXPECT_THAT(r.output, HasSubstr("cohort = 12"));
  EXPECT_THAT(r.output, HasSubstr("noise_multiplier = 1.1"));
  const std::string example = std::string(FEDLORA_SOURCE_DIR) + "/examples/sim-personas.ini";
  CliRun e = Fedlora("sim --config " + example + " --print-config");
  EXPECT_EQ(e.exit_code, 0) << e.output;
  EXPECT_THAT(e.output, HasSubstr("rounds = 50"));
}

// Bounds are named, not CLI11's range up to the largest double.
TEST(CliSimTest, NumericBoundsAreNamed) {
  CliRun r = Fedlora("generate --model /nonexistent --prompt a -n -1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("must be >= 0, got -1"));
  EXPECT_THAT(r.output, ::testing::Not(HasSubstr("1797")));
}

}  // namespace
}  // namespace fedlora::sim
