// The phone's personal keyboard model: the public n-gram that ships with the base, personal
// counts from the encrypted text store, the suggestion strip that uses them, the memory
// budget, and forget.
#include "fedlora/device/personal_keyboard.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "device/device_testutil.h"
#include "fedlora/common/file_util.h"
#include "fedlora/device/generate.h"
#include "fedlora/device/text_store.h"
#include "gtest/gtest.h"

namespace fedlora::device {
namespace {

namespace fs = std::filesystem;
using testing::MakeLines;
using testing::SharedTokenizer;

// A base-model folder holding only public_ngram.txt (counted on users 0..5's lines).
struct ModelDir {
  // One folder per process: ctest runs this suite's tests in parallel processes.
  ModelDir()
      : dir((fs::temp_directory_path() /
             ("fedlora_personal_keyboard_" + std::to_string(::getpid())))
                .string()) {
    fs::remove_all(dir);
    fs::create_directories(dir);
    WordNgram pub;
    for (int u = 0; u < 6; ++u) {
      pub.AddLines(SharedTokenizer(), KeyboardVocab::FromTokenizer(SharedTokenizer()),
                   MakeLines(u, 20, 1));
    }
    EXPECT_TRUE(WriteFileAtomic(dir + "/public_ngram.txt", pub.Serialize()).ok());
  }
  ~ModelDir() { fs::remove_all(dir); }
  std::string dir;
};

std::vector<std::string> Words(const std::vector<Suggestion>& s) {
  std::vector<std::string> out;
  for (const auto& w : s) out.push_back(w.word);
  return out;
}

bool Has(const std::vector<std::string>& v, const std::string& w) {
  return std::find(v.begin(), v.end(), w) != v.end();
}

TEST(PersonalKeyboardTest, LoadsThePublicNgramShippedWithTheBase) {
  ModelDir m;
  auto kb = PersonalKeyboard::Load(m.dir, SharedTokenizer());
  ASSERT_TRUE(kb.ok()) << kb.status();
  ASSERT_TRUE(kb->has_value());
  EXPECT_GT((*kb)->Strip().size(), 10u);
  // No file: no lexicon strip (the greedy one is used).
  auto none = PersonalKeyboard::Load(m.dir + "/missing", SharedTokenizer());
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  ASSERT_TRUE(WriteFileAtomic(m.dir + "/public_ngram.txt", "garbage\n").ok());
  auto bad = PersonalKeyboard::Load(m.dir, SharedTokenizer());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("public_ngram.txt"), std::string::npos);
}

TEST(PersonalKeyboardTest, TheStripSuggestsTheUsersOwnWordsUntilForget) {
  ModelDir m;
  auto kb = PersonalKeyboard::Load(m.dir, SharedTokenizer());
  ASSERT_TRUE(kb.ok() && kb->has_value());
  PersonalKeyboard& keyboard = **kb;
  const model::LlamaModel model = testing::SmallModel(3);
  const std::string prefix = "hey lena want to meet ott";
  auto before = SuggestLexiconWords(model, SharedTokenizer(), keyboard.Strip(), prefix, 3);
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_FALSE(Has(Words(*before), "ottomaya"));
  for (const auto& w : Words(*before)) EXPECT_EQ(w.rfind("ott", 0), 0u) << w;

  // What the C API does: the store keeps the line (encrypted) and the keyboard counts it.
  testing::TempTextStore t("personal_keyboard");
  auto store = TextStore::Open(t.options, 1000);
  ASSERT_TRUE(store.ok()) << store.status();
  const std::string line = "hey lena want to meet ottomaya at the park";
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(store->Append(line, 1000).ok());
    keyboard.Observe(line);
  }
  auto after = SuggestLexiconWords(model, SharedTokenizer(), keyboard.Strip(), prefix, 3);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_TRUE(Has(Words(*after), "ottomaya"));
  // At rest the personal words exist only inside the encrypted store.
  EXPECT_EQ(testing::Slurp(t.File()).find("ottomaya"), std::string::npos);
  // Re-opening rebuilds the same counts from the store.
  auto reopened = PersonalKeyboard::Load(m.dir, SharedTokenizer());
  ASSERT_TRUE(reopened.ok() && reopened->has_value());
  auto entries = store->ReadAll(1000);
  ASSERT_TRUE(entries.ok());
  for (const auto& e : *entries) (*reopened)->Observe(e.text);
  EXPECT_EQ((*reopened)->personal().Serialize(), keyboard.personal().Serialize());

  // forget: the store and the counts go.
  ASSERT_TRUE(store->Forget().ok());
  keyboard.Reset();
  EXPECT_TRUE(keyboard.personal().unigrams().empty());
  auto forgotten = SuggestLexiconWords(model, SharedTokenizer(), keyboard.Strip(), prefix, 3);
  ASSERT_TRUE(forgotten.ok());
  EXPECT_FALSE(Has(Words(*forgotten), "ottomaya"));
}

TEST(PersonalKeyboardTest, ThePersonalCountsStayWithinTheirBudget) {
  ModelDir m;
  PersonalKeyboardOptions o;
  o.max_bytes = 16 << 10;
  auto kb = PersonalKeyboard::Load(m.dir, SharedTokenizer(), o);
  ASSERT_TRUE(kb.ok() && kb->has_value());
  for (int u = 0; u < 6; ++u) {
    for (const auto& l : MakeLines(u, 60, 7 + u)) (*kb)->Observe(l + " " + std::to_string(u));
  }
  EXPECT_LE((*kb)->ApproxBytes(), o.max_bytes);
  EXPECT_GT((*kb)->personal().unigrams().size(), 10u);  // the frequent words stay
}

}  // namespace
}  // namespace fedlora::device
