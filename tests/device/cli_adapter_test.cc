// `fedlora perplexity --model DIR --adapter DIR FILE --json`: the adapter flag takes one
// directory and leaves the file to the positional argument, and the result is PEFT's NLL.
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace {

TEST(CliAdapterTest, PerplexityWithAdapterMatchesPeftReference) {
  const std::string fx = std::string(FEDLORA_SHARED_DIR) + "/fixtures/hf-tiny-llama";
  if (!std::filesystem::exists(fx + "/reference.json")) GTEST_SKIP() << "shared fixtures absent";
  std::ifstream in(fx + "/reference.json");
  auto ref = nlohmann::json::parse(in);
  auto text_path = std::filesystem::temp_directory_path() /
                   ("fedlora_cli_adapter_" + std::to_string(::getpid()) + ".txt");
  std::ofstream(text_path) << ref["cases"][0]["text"].get<std::string>();
  std::string cmd = std::string(FEDLORA_BINARY) + " perplexity --model " + fx + "/base --adapter " +
                    fx + "/adapter " + text_path.string() + " --json 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  while (fgets(buf, sizeof(buf), p) != nullptr) out += buf;
  ASSERT_EQ(pclose(p), 0) << out;
  auto j = nlohmann::json::parse(out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << out;
  EXPECT_NEAR(j["nll"].get<double>(), ref["cases"][0]["nll_adapter"].get<double>(), 1e-4);
  std::filesystem::remove(text_path);
}

}  // namespace
