// Runs the built `fedlora privacy` CLI end to end.
#include <cstdio>
#include <string>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace {

#ifdef FEDLORA_BINARY
std::string RunCli(const std::string& args, int* rc) {
  std::string out;
  FILE* pipe = popen((std::string(FEDLORA_BINARY) + " " + args + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  *rc = pclose(pipe);
  return out;
}
#endif

TEST(PrivacyCliTest, EpsilonAndNoiseJson) {
#ifndef FEDLORA_BINARY
  GTEST_SKIP() << "FEDLORA_BINARY not defined";
#else
  int rc = -1;
  auto out = RunCli("privacy epsilon --q 0.0025 --noise 1.3 --steps 6000 --delta 1e-5 --json", &rc);
  ASSERT_EQ(rc, 0) << out;
  auto j = nlohmann::json::parse(out);
  EXPECT_NEAR(j["epsilon"].get<double>(), 0.7242234026, 1e-6);
  out = RunCli("privacy noise --q 0.0025 --epsilon 0.7242234026 --steps 6000 --delta 1e-5 --json",
               &rc);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NEAR(nlohmann::json::parse(out)["noise_multiplier"].get<double>(), 1.3, 1e-4);
  out = RunCli("privacy epsilon --q 1.5 --noise 1 --steps 10 --delta 1e-5", &rc);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("q must be in (0, 1]"), std::string::npos) << out;
  out = RunCli("privacy epsilon --q 0.1 --noise 0 --steps 10 --delta 1e-5", &rc);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("noise multiplier"), std::string::npos) << out;
#endif
}

}  // namespace
