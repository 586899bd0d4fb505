// The encrypted local text store (device/text_store.h): round trips, no plaintext on disk,
// owner-only keys, tampering refused, a torn append recovered, a failed write losing nothing,
// retention limits and Forget().
#include "fedlora/device/text_store.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <ctime>
#include <filesystem>
#include <fstream>

#include "device_testutil.h"
#include "fedlora/common/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testutil/cli_runner.h"

namespace fedlora::device {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr int64_t kNow = 1'800'000'000;
constexpr int64_t kDay = 86400;

using TempStore = testing::TempTextStore;
using testing::Slurp;
using testing::Spit;

std::vector<std::string> Texts(TextStore& s, int64_t now = kNow) {
  auto all = s.ReadAll(now);
  EXPECT_TRUE(all.ok()) << all.status();
  std::vector<std::string> out;
  for (const auto& e : *all) out.push_back(e.text);
  return out;
}

TEST(TextStoreTest, RoundTripsEncryptedWithAnOwnerOnlyKey) {
  TempStore t("roundtrip");
  {
    auto s = TextStore::Open(t.options, kNow);
    ASSERT_TRUE(s.ok()) << s.status();
    ASSERT_TRUE(s->Append("meet me at the lighthouse", kNow).ok());
    ASSERT_TRUE(s->Append("bring the blue umbrella", kNow + 1).ok());
  }
  auto s = TextStore::Open(t.options, kNow + 2);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_THAT(Texts(*s), ::testing::ElementsAre("meet me at the lighthouse",
                                                "bring the blue umbrella"));
  // Nothing the user typed is on disk in the clear.
  const std::string raw = Slurp(t.File());
  EXPECT_EQ(raw.find("lighthouse"), std::string::npos);
  EXPECT_EQ(raw.find("umbrella"), std::string::npos);
  struct stat st{};
  ASSERT_EQ(::stat(t.options.key_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(t.options.dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  // A key file others can read is refused, with the fix.
  ASSERT_EQ(::chmod(t.options.key_file.c_str(), 0644), 0);
  auto loose = TextStore::Open(t.options, kNow);
  EXPECT_EQ(loose.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(loose.status().message(), HasSubstr("chmod 600"));
  EXPECT_EQ(TextStore::Open(t.options, kNow).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(TextStoreTest, TamperedReorderedOrForeignStoresAreRefusedUntouched) {
  TempStore t("tamper");
  {
    auto s = TextStore::Open(t.options, kNow);
    ASSERT_TRUE(s.ok());
    for (const char* x : {"first line", "second line", "third line"}) {
      ASSERT_TRUE(s->Append(x, kNow).ok());
    }
  }
  const std::string good = Slurp(t.File());
  // One flipped bit in the middle record.
  std::string bad = good;
  bad[bad.size() / 2] ^= 0x04;
  Spit(t.File(), bad);
  auto s = TextStore::Open(t.options, kNow);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.status().message(), HasSubstr("failed authentication"));
  EXPECT_EQ(Slurp(t.File()), bad) << "a refused store is left as it was";
  // The middle record cut out: the chain breaks.
  {
    const size_t header = 22;
    auto len = [&](size_t pos) {
      return 4 + (static_cast<uint8_t>(good[pos]) | static_cast<uint8_t>(good[pos + 1]) << 8);
    };
    const size_t r0 = len(header), r1 = len(header + r0);
    Spit(t.File(), good.substr(0, header + r0) + good.substr(header + r0 + r1));
    EXPECT_EQ(TextStore::Open(t.options, kNow).status().code(), absl::StatusCode::kDataLoss);
  }
  // The right file under another key.
  Spit(t.File(), good);
  TextStoreOptions other = t.options;
  other.key = secagg::Secret32();
  EXPECT_EQ(TextStore::Open(other, kNow).status().code(), absl::StatusCode::kDataLoss);
  // Not a store at all.
  Spit(t.File(), "hello, I am a text file\n");
  EXPECT_THAT(TextStore::Open(t.options, kNow).status().message(),
              HasSubstr("not a fedlora text store"));
  Spit(t.File(), good);
  auto back = TextStore::Open(t.options, kNow);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->entries(), 3);
}

TEST(TextStoreTest, ATornAppendIsDroppedAndAFailedWriteLosesNothing) {
  TempStore t("crash");
  {
    auto s = TextStore::Open(t.options, kNow);
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE(s->Append("kept one", kNow).ok());
    ASSERT_TRUE(s->Append("kept two", kNow).ok());
  }
  // What kill -9 in the middle of an append leaves: a length and part of a record.
  const std::string before = Slurp(t.File());
  Spit(t.File(), before + std::string("\x40\x00\x00\x00partial", 11));
  {
    auto s = TextStore::Open(t.options, kNow);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ(s->recovered_bytes(), 11);
    EXPECT_EQ(Slurp(t.File()), before);
    ASSERT_TRUE(s->Append("kept three", kNow).ok());
  }
  // A write the disk refuses (file size limit: EFBIG, as a full disk gives ENOSPC).
  auto s = TextStore::Open(t.options, kNow);
  ASSERT_TRUE(s.ok());
  EXPECT_THAT(Texts(*s), ::testing::ElementsAre("kept one", "kept two", "kept three"));
  const std::string good = Slurp(t.File());
  rlimit old{};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
  signal(SIGXFSZ, SIG_IGN);
  rlimit small = old;
  small.rlim_cur = good.size() + 10;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  const absl::Status st = s->Append(std::string(200, 'x'), kNow);
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &old), 0);
  signal(SIGXFSZ, SIG_DFL);
  EXPECT_FALSE(st.ok());
  EXPECT_THAT(st.message(), HasSubstr("cannot append"));
  EXPECT_EQ(Slurp(t.File()), good) << "the failed append left no partial record";
  EXPECT_EQ(s->entries(), 3);
  ASSERT_TRUE(s->Append("after the disk freed up", kNow).ok());
  auto again = TextStore::Open(t.options, kNow);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->entries(), 4);
}

TEST(TextStoreTest, RetentionDropsOldAndExcessTextOldestFirst) {
  TempStore t("retention");
  t.options.retention_days = 7;
  t.options.max_bytes = 20;
  auto s = TextStore::Open(t.options, kNow);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(s->Append("ten days", kNow - 10 * kDay).ok());  // dropped at once
  ASSERT_TRUE(s->Append("six days", kNow - 6 * kDay).ok());
  ASSERT_TRUE(s->Append("today", kNow).ok());
  EXPECT_THAT(Texts(*s), ::testing::ElementsAre("six days", "today"));
  // Two days later "six days" is past the 7-day limit.
  EXPECT_THAT(Texts(*s, kNow + 2 * kDay), ::testing::ElementsAre("today"));
  ASSERT_TRUE(s->Append("0123456789", kNow + 2 * kDay).ok());
  ASSERT_TRUE(s->Append("abcdefghij", kNow + 2 * kDay).ok());  // 25 bytes > 20: oldest goes
  EXPECT_THAT(Texts(*s, kNow + 2 * kDay), ::testing::ElementsAre("0123456789", "abcdefghij"));
  EXPECT_EQ(s->Append(std::string(21, 'y'), kNow).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s->Append("", kNow).code(), absl::StatusCode::kInvalidArgument);
  // The limits hold on disk: a reopened store has the same text.
  auto again = TextStore::Open(t.options, kNow + 2 * kDay);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_THAT(Texts(*again, kNow + 2 * kDay), ::testing::ElementsAre("0123456789", "abcdefghij"));
}

TEST(TextStoreTest, ForgetErasesTextAndKeySoCopiesStayUnreadable) {
  TempStore t("forget");
  auto s = TextStore::Open(t.options, kNow);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(s->Append("my bank pin is not here", kNow).ok());
  const std::string copy = Slurp(t.File());
  ASSERT_TRUE(s->Forget().ok());
  EXPECT_FALSE(fs::exists(t.File()));
  EXPECT_FALSE(fs::exists(t.options.key_file));
  EXPECT_EQ(s->Append("more", kNow).code(), absl::StatusCode::kFailedPrecondition);
  // A copy of the old file (a backup, a flash block) no longer opens: its key is gone.
  Spit(t.File(), copy);
  EXPECT_EQ(TextStore::Open(t.options, kNow).status().code(), absl::StatusCode::kDataLoss);
  // A key handed in by the app: no key file is written.
  TempStore h("handed");
  h.options.key_file.clear();
  secagg::Secret32 key;
  key.data()[0] = 7;
  h.options.key = key;
  auto hs = TextStore::Open(h.options, kNow);
  ASSERT_TRUE(hs.ok()) << hs.status();
  ASSERT_TRUE(hs->Append("hello", kNow).ok());
  EXPECT_FALSE(fs::exists(h.dir + "/key"));
  h.options.key.reset();
  EXPECT_EQ(TextStore::Open(h.options, kNow).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(TextStoreTest, CliObservesAndForgets) {
  TempStore t("cli");
  const std::string state = t.dir + "/phone";
  fs::create_directories(state);
  auto r = testing::RunFedlora("device observe --state " + state +
                                   " --text 'the ferry leaves at nine' --text 'call grandma' --json",
                               t.dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"entries\":2"));
  EXPECT_EQ(Slurp(state + "/text/text.fls").find("ferry"), std::string::npos);
  // The CLI stamps entries with the clock; open as of now (kNow would be past retention).
  auto opened = TextStore::Open(TextStoreOptions::ForState(state), std::time(nullptr));
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(opened->entries(), 2);
  auto none = testing::RunFedlora("device observe --state " + state, t.dir);
  EXPECT_NE(none.exit_code, 0);
  EXPECT_THAT(none.err, HasSubstr("--text"));
  // A damaged store (and a key that no longer matches) is still erased.
  Spit(state + "/text/text.fls", "garbage");
  auto f = testing::RunFedlora("device forget --state " + state + " --json", t.dir);
  ASSERT_EQ(f.exit_code, 0) << f.err;
  EXPECT_FALSE(fs::exists(state + "/text/text.fls"));
  EXPECT_FALSE(fs::exists(state + "/text.key"));
}

}  // namespace
}  // namespace fedlora::device
