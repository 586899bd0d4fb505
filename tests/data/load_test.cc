#include "fedlora/data/load.h"

#include <chrono>
#include <filesystem>
#include <fstream>

#include "fedlora/data/dataset.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora::data {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A fresh, empty temporary directory per test.
class LoadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           (std::string("fedlora_data_") + info->name() + "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& content) {
    fs::path p = dir_ / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << content;
    return p.string();
  }

  fs::path dir_;
};

std::string Message(const absl::Status& s) { return std::string(s.message()); }

TEST_F(LoadTest, TextDirOneUserPerFileSortedByName) {
  Write("users/bob.txt", "hi\n\n  \nthere\r\nfriend\n");
  Write("users/alice.txt", "one\ntwo\nthree\nfour\nfive\n");
  Write("users/.hidden", "ignored\n");
  fs::create_directories(dir_ / "users" / "subdir");
  auto ds = LoadFederatedDataset((dir_ / "users").string());
  ASSERT_TRUE(ds.ok()) << ds.status();
  ASSERT_EQ(ds->users.size(), 2u);
  EXPECT_EQ(ds->users[0].id, "alice");
  EXPECT_THAT(ds->users[0].train, ElementsAre("one", "two", "three", "four"));
  EXPECT_THAT(ds->users[0].test, ElementsAre("five"));
  EXPECT_EQ(ds->users[1].id, "bob");
  EXPECT_EQ(ds->users[1].num_lines(), 3u);  // Blank lines skipped, '\r' stripped.
  EXPECT_EQ(ds->users[1].train[1], "there");
  EXPECT_THAT(ds->source, HasSubstr("dir:"));
}

TEST_F(LoadTest, MinLinesAndMaxUsers) {
  Write("u/a.txt", "1\n2\n3\n");
  Write("u/b.txt", "1\n");
  Write("u/c.txt", "1\n2\n3\n4\n");
  Write("u/d.txt", "1\n2\n3\n");
  LoadOptions opt;
  opt.min_lines = 3;
  auto ds = LoadFederatedDataset((dir_ / "u").string(), opt);
  ASSERT_TRUE(ds.ok()) << ds.status();
  ASSERT_EQ(ds->users.size(), 3u);
  EXPECT_EQ(ds->users[1].id, "c");
  opt.max_users = 2;
  ds = LoadFederatedDataset((dir_ / "u").string(), opt);
  ASSERT_TRUE(ds.ok());
  ASSERT_EQ(ds->users.size(), 2u);
  EXPECT_EQ(ds->users[1].id, "c");
  opt.min_lines = 5;
  ds = LoadFederatedDataset((dir_ / "u").string(), opt);
  ASSERT_FALSE(ds.ok());
  EXPECT_THAT(Message(ds.status()), HasSubstr("--min-lines"));
}

TEST_F(LoadTest, EmptyDirIsAnError) {
  fs::create_directories(dir_ / "empty");
  auto ds = LoadFederatedDataset((dir_ / "empty").string());
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(ds.status()), HasSubstr("no user files"));
}

TEST_F(LoadTest, DuplicateUserIdInDirIsAnError) {
  Write("d/x.txt", "a\n");
  Write("d/x.md", "b\n");
  auto ds = LoadFederatedDataset((dir_ / "d").string());
  ASSERT_FALSE(ds.ok());
  EXPECT_THAT(Message(ds.status()), HasSubstr("'x'"));
}

TEST_F(LoadTest, MissingPathIsNotFound) {
  auto ds = LoadFederatedDataset((dir_ / "nope.jsonl").string());
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(ds.status()), HasSubstr("nope.jsonl"));
  LoadOptions opt;
  opt.format = DataFormat::kJsonl;  // Explicit format: still NOT_FOUND from the read.
  ds = LoadFederatedDataset((dir_ / "nope.jsonl").string(), opt);
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(LoadTest, JsonlGroupsByUserInFirstAppearanceOrder) {
  std::string p = Write("d.jsonl",
                        "{\"user\": \"zed\", \"text\": \"a\"}\n"
                        "{\"user\": 7, \"text\": \"b\"}\n"
                        "\n"
                        "{\"user\": \"zed\", \"text\": \"c\"}\n"
                        "{\"user\": \"zed\", \"text\": \"  \"}\n");
  LoadOptions opt;
  opt.test_fraction = 0.5;
  auto ds = LoadFederatedDataset(p, opt);
  ASSERT_TRUE(ds.ok()) << ds.status();
  ASSERT_EQ(ds->users.size(), 2u);
  EXPECT_EQ(ds->users[0].id, "zed");
  EXPECT_THAT(ds->users[0].train, ElementsAre("a"));
  EXPECT_THAT(ds->users[0].test, ElementsAre("c"));
  EXPECT_EQ(ds->users[1].id, "7");
}

TEST_F(LoadTest, BadJsonlNamesFileAndLine) {
  std::string p = Write("bad.jsonl",
                        "{\"user\": \"a\", \"text\": \"ok\"}\n"
                        "\n"
                        "{\"user\": \"a\", \"text\": oops}\n");
  auto ds = LoadFederatedDataset(p);
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(ds.status()), HasSubstr("bad.jsonl:3"));

  p = Write("missing_key.jsonl", "{\"user\": \"a\"}\n");
  ds = LoadFederatedDataset(p);
  ASSERT_FALSE(ds.ok());
  EXPECT_THAT(Message(ds.status()), HasSubstr("missing_key.jsonl:1"));

  p = Write("wrong_type.jsonl", "{\"user\": \"a\", \"text\": 3}\n");
  ds = LoadFederatedDataset(p);
  ASSERT_FALSE(ds.ok());
  EXPECT_THAT(Message(ds.status()), HasSubstr("\"text\" must be a string"));
}

TEST_F(LoadTest, ShakespeareTsvByRoleWithHeader) {
  std::string p = Write("plays.tsv",
                        "line_id\tplay\tspeaker\tact.scene.line\ttext\n"
                        "1\tHamlet\tHAMLET\t1.1.1\tTo be\n"
                        "2\tHamlet\tHORATIO\t1.1.2\tMy lord\n"
                        "3\tHamlet\tHAMLET\t1.1.3\tor not\n"
                        "4\tMacbeth\tHAMLET\t1.1.1\tnot the same role\n"
                        "5\tMacbeth\t\t1.1.2\tA stage direction\n");
  LoadOptions opt;
  opt.test_fraction = 0;
  auto ds = LoadFederatedDataset(p, opt);
  ASSERT_TRUE(ds.ok()) << ds.status();
  ASSERT_EQ(ds->users.size(), 3u);
  EXPECT_EQ(ds->users[0].id, "Hamlet__HAMLET");
  EXPECT_THAT(ds->users[0].train, ElementsAre("To be", "or not"));
  EXPECT_EQ(ds->users[2].id, "Macbeth__HAMLET");
}

TEST_F(LoadTest, TsvWithWrongColumnCountNamesLine) {
  std::string p = Write("broken.tsv",
                        "1\tHamlet\tHAMLET\t1.1.1\tTo be\n"
                        "2\tHamlet\tHAMLET\tmissing a column\n");
  auto ds = LoadFederatedDataset(p);
  ASSERT_FALSE(ds.ok());
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(ds.status()), HasSubstr("broken.tsv:2"));
  EXPECT_THAT(Message(ds.status()), HasSubstr("got 4"));
}

TEST_F(LoadTest, PlayTextBySpeaker) {
  std::string p = Write("play.txt",
                        "A PLAY\n\n"
                        "First Citizen:\nBefore we proceed:\nhear me.\n\n"
                        "All:\nSpeak.\n\n"
                        "First Citizen:\nYou are resolved?\n");
  LoadOptions opt;
  opt.test_fraction = 0;
  auto ds = LoadFederatedDataset(p, opt);
  ASSERT_TRUE(ds.ok()) << ds.status();
  ASSERT_EQ(ds->users.size(), 2u);
  EXPECT_EQ(ds->users[0].id, "First_Citizen");
  // "Before we proceed:" ends in ':' but follows the speaker line, so it is speech.
  EXPECT_THAT(ds->users[0].train,
              ElementsAre("Before we proceed:", "hear me.", "You are resolved?"));
  EXPECT_EQ(ds->users[1].id, "All");
}

TEST_F(LoadTest, DetectionAndHints) {
  Write("d/a.txt", "x\n");
  EXPECT_EQ(*DetectDataFormat((dir_ / "d").string()), DataFormat::kTextDir);
  EXPECT_EQ(*DetectDataFormat(Write("x.jsonl", "")), DataFormat::kJsonl);
  EXPECT_EQ(*DetectDataFormat(Write("x.TSV", "")), DataFormat::kShakespeareTsv);
  EXPECT_EQ(*DetectDataFormat(Write("p.txt", "ROMEO:\nhi\n")), DataFormat::kPlayText);
  EXPECT_EQ(*DetectDataFormat("personas:users=3"), DataFormat::kPersonas);
  auto bad = DetectDataFormat(Write("plain.txt", "just some text\n"));
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(Message(bad.status()), HasSubstr("hint"));
  bad = DetectDataFormat(Write("x.csv", "a,b\n"));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ParseDataFormatTest, NamesRoundTrip) {
  for (DataFormat f : {DataFormat::kAuto, DataFormat::kTextDir, DataFormat::kJsonl,
                       DataFormat::kShakespeareTsv, DataFormat::kPlayText, DataFormat::kPersonas}) {
    auto parsed = ParseDataFormat(DataFormatName(f));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, f);
  }
  auto bad = ParseDataFormat("csv");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(Message(bad.status()), HasSubstr("shakespeare-tsv"));
}

TEST(LoadOptionsTest, BadOptionsRejected) {
  LoadOptions opt;
  opt.test_fraction = 1.0;
  EXPECT_EQ(LoadFederatedDataset("personas", opt).status().code(),
            absl::StatusCode::kInvalidArgument);
  opt.test_fraction = 0.2;
  opt.min_lines = -1;
  EXPECT_EQ(LoadFederatedDataset("personas", opt).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(PersonaSpecTest, ParsesKeysAndRejectsUnknown) {
  auto o = ParsePersonaSpec("personas:users=12,seed=9,lines=30");
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->users, 12);
  EXPECT_EQ(o->seed, 9u);
  EXPECT_EQ(o->lines_per_user, 30);
  EXPECT_FALSE(ParsePersonaSpec("personas:people=3").ok());
  EXPECT_FALSE(ParsePersonaSpec("personas:users=x").ok());
  auto ds = LoadFederatedDataset("personas:users=5,lines=10");
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(ds->users.size(), 5u);
  EXPECT_EQ(ds->users[0].train.size(), 8u);
}

// The real Shakespeare copies in ../shared/data (README: 1,334 roles, 429 with >= 50 lines in
// the TSV; 299 speakers, 101 with >= 50 lines in tinyshakespeare.txt).
std::string SharedFile(const std::string& rel) {
  return std::string(FEDLORA_SHARED_DIR) + "/data/shakespeare/" + rel;
}

TEST(SharedShakespeareTest, TsvRoleCounts) {
  const std::string path = SharedFile("plays_by_speaker.tsv");
  if (!fs::exists(path)) GTEST_SKIP() << path << " absent";
  auto start = std::chrono::steady_clock::now();
  auto all = LoadFederatedDataset(path);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(all.ok()) << all.status();
  // README counts 1,334 roles and 105,153 lines; one of those rows (Cymbeline 2.2.55) has an
  // empty speaker: a stage direction, which the loader skips.
  EXPECT_EQ(all->users.size(), 1333u);
  DatasetStats s = ComputeStats(*all);
  EXPECT_EQ(s.train_lines + s.test_lines, 105152);
  std::cout << "[ info ] loaded " << path << " in " << secs * 1000 << " ms\n";

  LoadOptions opt;
  opt.min_lines = 50;
  auto ds = LoadFederatedDataset(path, opt);
  ASSERT_TRUE(ds.ok());
  EXPECT_EQ(ds->users.size(), 429u);
  for (const UserData& u : ds->users) {
    EXPECT_GE(u.num_lines(), 50u);
    EXPECT_EQ(u.test.size(), NumTestLines(u.num_lines(), 0.2));
  }
  EXPECT_EQ(ds->users[0].id, "Henry_IV__KING_HENRY_IV");
  EXPECT_EQ(ds->users[0].train[0], "So shaken as we are, so wan with care,");
}

TEST(SharedShakespeareTest, TinyShakespeareSpeakerCounts) {
  const std::string path = SharedFile("tinyshakespeare.txt");
  if (!fs::exists(path)) GTEST_SKIP() << path << " absent";
  auto all = LoadFederatedDataset(path);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->users.size(), 299u);
  EXPECT_EQ(all->users[0].id, "First_Citizen");
  LoadOptions opt;
  opt.min_lines = 50;
  auto ds = LoadFederatedDataset(path, opt);
  ASSERT_TRUE(ds.ok());
  EXPECT_EQ(ds->users.size(), 101u);
}

}  // namespace
}  // namespace fedlora::data
