#include "fedlora/data/personas.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include "absl/strings/str_join.h"
#include "fedlora/data/load.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora::data {
namespace {

// Fraction of `lines` that contain `word` as a whole word.
double WordRate(const std::vector<std::string>& lines, const std::string& word) {
  if (lines.empty()) return 0;
  int hits = 0;
  for (const std::string& l : lines) {
    auto w = SplitWords(l);
    hits += std::find(w.begin(), w.end(), word) != w.end();
  }
  return static_cast<double>(hits) / lines.size();
}

std::vector<std::string> AllLines(const UserData& u) {
  std::vector<std::string> all = u.train;
  all.insert(all.end(), u.test.begin(), u.test.end());
  return all;
}

TEST(PersonasTest, ShapeAndIds) {
  PersonaOptions opt;
  opt.users = 30;
  opt.lines_per_user = 50;
  FederatedDataset ds = GeneratePersonas(opt);
  ASSERT_EQ(ds.users.size(), 30u);
  EXPECT_EQ(ds.source, "personas:users=30,seed=1,lines=50");
  std::set<std::string> ids;
  for (const UserData& u : ds.users) {
    EXPECT_EQ(u.train.size(), 40u);
    EXPECT_EQ(u.test.size(), 10u);
    ids.insert(u.id);
    for (const std::string& l : AllLines(u)) EXPECT_FALSE(l.empty());
  }
  EXPECT_EQ(ids.size(), 30u);
  EXPECT_EQ(ds.users[7].id, "persona_0007");
}

TEST(PersonasTest, DeterministicPerSeedDifferentAcrossSeeds) {
  PersonaOptions a;
  a.users = 20;
  PersonaOptions b = a;
  b.seed = 2;
  FederatedDataset a1 = GeneratePersonas(a), a2 = GeneratePersonas(a), b1 = GeneratePersonas(b);
  int differing_users = 0;
  for (size_t i = 0; i < a1.users.size(); ++i) {
    EXPECT_EQ(a1.users[i].train, a2.users[i].train);
    EXPECT_EQ(a1.users[i].test, a2.users[i].test);
    differing_users += a1.users[i].train != b1.users[i].train;
  }
  EXPECT_EQ(differing_users, 20);
  EXPECT_EQ(PublicCorpus(a, 100), PublicCorpus(a, 100));
  EXPECT_NE(PublicCorpus(a, 100), PublicCorpus(b, 100));
}

TEST(PersonasTest, PersonaDoesNotDependOnPopulationSize) {
  PersonaOptions small, big;
  small.users = 5;
  big.users = 50;
  FederatedDataset s = GeneratePersonas(small), l = GeneratePersonas(big);
  for (size_t i = 0; i < s.users.size(); ++i) EXPECT_EQ(s.users[i].train, l.users[i].train);
}

TEST(PersonasTest, SignatureNameIsPersonal) {
  PersonaOptions opt;  // Defaults: 200 users x 60 lines.
  FederatedDataset ds = GeneratePersonas(opt);
  std::vector<PersonaProfile> profiles = MakePersonaProfiles(opt);
  ASSERT_EQ(profiles.size(), ds.users.size());
  int test_hits = 0;
  for (size_t i = 0; i < ds.users.size(); ++i) {
    const std::string& name = profiles[i].friends[0];
    const double own = WordRate(AllLines(ds.users[i]), name);
    double others = 0;
    for (size_t j = 0; j < ds.users.size(); ++j) {
      if (j != i) others += WordRate(AllLines(ds.users[j]), name);
    }
    others /= static_cast<double>(ds.users.size() - 1);
    EXPECT_GT(own, 0.05) << profiles[i].id << " " << name;
    EXPECT_GT(own, 5 * others) << profiles[i].id << " " << name;
    EXPECT_GT(WordRate(ds.users[i].train, name), 0) << profiles[i].id;
    test_hits += WordRate(ds.users[i].test, name) > 0;
  }
  // The test split (12 lines) shows the signature name for the large majority of personas.
  EXPECT_GT(test_hits, 0.85 * ds.users.size());
}

TEST(PersonasTest, HabitWordsNeverInPublicCorpus) {
  PersonaOptions opt;
  opt.users = 200;
  std::set<std::string> habits;
  for (const PersonaProfile& p : MakePersonaProfiles(opt)) {
    std::vector<std::string> hw = p.HabitWords();
    EXPECT_THAT(hw, ::testing::Contains(p.friends[0]));
    EXPECT_THAT(hw, ::testing::Contains(p.pet));
    for (const auto& h : p.hobbies) EXPECT_THAT(hw, ::testing::Contains(h));
    for (const auto& h : p.places) EXPECT_THAT(hw, ::testing::Contains(h));
    for (const auto& h : p.foods) EXPECT_THAT(hw, ::testing::Contains(h));
    EXPECT_THAT(hw, ::testing::Contains(p.greeting));
    habits.insert(hw.begin(), hw.end());
  }
  std::set<std::string> public_words;
  for (const std::string& w : SplitWords(PublicCorpus(opt, 20000))) public_words.insert(w);
  for (const std::string& w : public_words) EXPECT_EQ(habits.count(w), 0u) << w;
  std::vector<std::string> general = GeneralVocabulary();
  // The public corpus covers the general language, and nothing outside it.
  EXPECT_EQ(std::vector<std::string>(public_words.begin(), public_words.end()), general);
}

TEST(PersonasTest, HabitStrengthZeroMakesPersonasGeneric) {
  PersonaOptions opt;
  opt.users = 10;
  opt.habit_strength = 0;
  std::vector<std::string> general = GeneralVocabulary();
  std::set<std::string> g(general.begin(), general.end());
  std::vector<PersonaProfile> profiles = MakePersonaProfiles(opt);
  FederatedDataset ds = GeneratePersonas(opt);
  for (size_t i = 0; i < ds.users.size(); ++i) {
    for (const std::string& w : SplitWords(UserTrainText(ds.users[i]))) {
      EXPECT_EQ(g.count(w), 1u) << ds.users[i].id << " uses private word '" << w << "'";
    }
  }
}

TEST(PersonasTest, VocabularyIsModest) {
  PersonaOptions opt;
  std::set<std::string> words;
  for (const UserData& u : GeneratePersonas(opt).users) {
    for (const std::string& w : SplitWords(UserTrainText(u) + "\n" + UserTestText(u))) {
      words.insert(w);
    }
  }
  EXPECT_GT(words.size(), 200u);
  EXPECT_LT(words.size(), 700u);
}

TEST(PersonasTest, WrittenFilesReloadAsTheSameSplit) {
  namespace fs = std::filesystem;
  PersonaOptions opt;
  opt.users = 4;
  opt.lines_per_user = 25;
  FederatedDataset ds = GeneratePersonas(opt);
  fs::path dir = fs::temp_directory_path() / ("fedlora_personas_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const UserData& u : ds.users) {
    std::ofstream(dir / (u.id + ".txt")) << UserTrainText(u) << "\n" << UserTestText(u) << "\n";
  }
  auto back = LoadFederatedDataset(dir.string());
  fs::remove_all(dir);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->users.size(), ds.users.size());
  for (size_t i = 0; i < ds.users.size(); ++i) {
    EXPECT_EQ(back->users[i].id, ds.users[i].id);
    EXPECT_EQ(back->users[i].train, ds.users[i].train);
    EXPECT_EQ(back->users[i].test, ds.users[i].test);
  }
}

}  // namespace
}  // namespace fedlora::data
