// The C API's suggestion strip with the personal word n-gram (docs/capi.md, docs/device.md
// "Keyboard strip"): a base that ships public_ngram.txt gets the lexicon strip; the user's own
// words enter it with fedlora_observe, and fedlora_forget takes them out again. The program
// links libfedlora.so only, as an app does; capi_keyboard_fixture writes the model folder.
#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "fedlora.h"
#include "gtest/gtest.h"

namespace {

namespace fs = std::filesystem;

std::vector<std::string> Suggest(fedlora_runtime* rt, const char* prefix) {
  fedlora_suggestion strip[3];
  int n = 0;
  EXPECT_EQ(fedlora_suggest(rt, prefix, 3, strip, &n), FEDLORA_OK) << fedlora_last_error();
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back(strip[i].word);
  return out;
}

bool Has(const std::vector<std::string>& v, const std::string& w) {
  return std::find(v.begin(), v.end(), w) != v.end();
}

TEST(CApiKeyboardTest, SuggestUsesTheUsersOwnWordsUntilForget) {
  const fs::path base = fs::path(FEDLORA_SHARED_DIR) / "fixtures/hf-tiny-llama/base";
  if (!fs::exists(base / "config.json")) GTEST_SKIP() << "no " << base;
  // The tiny base with the public lexicon it ships, from capi_keyboard_fixture.
  const fs::path fixture = FEDLORA_CAPI_KEYBOARD_MODEL;
  ASSERT_TRUE(fs::exists(fixture / "public_ngram.txt"))
      << "no " << fixture << "/public_ngram.txt: run capi_keyboard_fixture " << fixture
      << " first (ctest runs it as CApiKeyboard.Setup)";
  const fs::path dir = fs::temp_directory_path() / "fedlora_capi_keyboard";
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::copy(fixture, dir / "model");

  fedlora_config cfg;
  fedlora_config_init(&cfg);
  const std::string model = (dir / "model").string(), state = (dir / "state").string();
  cfg.model_dir = model.c_str();
  cfg.state_dir = state.c_str();
  cfg.threads = 1;
  fedlora_runtime* rt = nullptr;
  ASSERT_EQ(fedlora_runtime_open(&cfg, &rt), FEDLORA_OK) << fedlora_last_error();
  // Lexicon words only, consistent with what is typed.
  for (const auto& w : Suggest(rt, "see you at the st")) EXPECT_EQ(w.rfind("st", 0), 0u) << w;
  EXPECT_FALSE(Has(Suggest(rt, "see you at the st"), "stellabrook"));
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(fedlora_observe(rt, "see you at the stellabrook later"), FEDLORA_OK);
  }
  EXPECT_TRUE(Has(Suggest(rt, "see you at the st"), "stellabrook"));
  // Re-opened, the runtime counts the store's lines again.
  ASSERT_EQ(fedlora_runtime_close(rt), FEDLORA_OK);
  rt = nullptr;
  ASSERT_EQ(fedlora_runtime_open(&cfg, &rt), FEDLORA_OK) << fedlora_last_error();
  EXPECT_TRUE(Has(Suggest(rt, "see you at the st"), "stellabrook"));
  ASSERT_EQ(fedlora_forget(rt), FEDLORA_OK) << fedlora_last_error();
  EXPECT_FALSE(Has(Suggest(rt, "see you at the st"), "stellabrook"));
  ASSERT_EQ(fedlora_runtime_close(rt), FEDLORA_OK);
  fs::remove_all(dir);
}

}  // namespace
