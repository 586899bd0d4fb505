// End-to-end checks of `fedlora data personas` and `fedlora data stats` (the built CLI).
#include <cstdio>
#include <filesystem>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace fedlora::data {
namespace {

namespace fs = std::filesystem;

// Runs `cmd`, returns its stdout and sets *rc to the exit status.
std::string RunCommand(const std::string& cmd, int* rc) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  int status = ::pclose(p);
  *rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

TEST(CmdDataTest, PersonasWrittenThenStatsReadThem) {
  fs::path dir = fs::temp_directory_path() / ("fedlora_cmd_data_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const std::string bin = FEDLORA_BINARY;
  int rc = -1;
  RunCommand(bin + " data personas --out " + (dir / "users").string() + " --users 7 --seed 3 " +
                 "--lines-per-user 20 --public-out " + (dir / "public.txt").string() +
                 " --public-lines 40",
             &rc);
  ASSERT_EQ(rc, 0);
  EXPECT_TRUE(fs::exists(dir / "users" / "persona_0006.txt"));
  EXPECT_TRUE(fs::exists(dir / "public.txt"));

  std::string out = RunCommand(bin + " data stats --json --data " + (dir / "users").string(), &rc);
  ASSERT_EQ(rc, 0) << out;
  nlohmann::json j = nlohmann::json::parse(out);
  EXPECT_EQ(j["users"], 7);
  EXPECT_EQ(j["train_lines"], 7 * 16);
  EXPECT_EQ(j["test_lines"], 7 * 4);

  // The same personas generated in memory give identical figures.
  std::string mem =
      RunCommand(bin + " data stats --json --data personas:users=7,seed=3,lines=20", &rc);
  ASSERT_EQ(rc, 0);
  EXPECT_EQ(nlohmann::json::parse(mem)["chars"], j["chars"]);

  RunCommand(bin + " data stats --data " + (dir / "missing").string() + " 2>/dev/null", &rc);
  EXPECT_EQ(rc, 1);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace fedlora::data
