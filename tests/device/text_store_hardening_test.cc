// The text store's hardening (issue 31): appends at the byte cap cost O(record) bytes, data
// keys rotate on compaction and before a GCM invocation limit (old copies stop opening),
// forget lets the next open use a new app key, and version-1 files are migrated.
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>

#include "device_testutil.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/random.h"
#include "fedlora/device/text_store.h"
#include "fedlora/secagg/aead.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora::device {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr int64_t kNow = 1'800'000'000;
constexpr int64_t kDay = 86400;

// Its own folder names: text_store_test.cc may run at the same time with the same test names.
struct TempStore : testing::TempTextStore {
  explicit TempStore(const std::string& name) : TempTextStore("hard_" + name) {}
};
using testing::Slurp;
using testing::Spit;

// Bytes this process has passed to write(2) so far (/proc/self/io "wchar"): what the store
// writes, whichever version of it runs.
int64_t BytesWrittenByProcess() {
  std::ifstream in("/proc/self/io");
  std::string key;
  int64_t value = 0;
  while (in >> key >> value) {
    if (key == "wchar:") return value;
  }
  return -1;
}

std::string Line(int i) {
  std::string s = "message number " + std::to_string(i) + " ";
  s.resize(100, 'a' + static_cast<char>(i % 26));
  return s;
}

TEST(TextStoreHardeningTest, AppendsAtTheByteCapWriteORecordBytesNotTheWholeStore) {
  if (BytesWrittenByProcess() < 0) GTEST_SKIP() << "no /proc/self/io";
  TempStore t("cap");
  t.options.retention_days = 0;
  t.options.max_bytes = 64 << 10;
  auto s = TextStore::Open(t.options, kNow);
  ASSERT_TRUE(s.ok()) << s.status();
  int i = 0;
  while (s->text_bytes() + 100 <= t.options.max_bytes) ASSERT_TRUE(s->Append(Line(i++), kNow).ok());
  for (int j = 0; j < 20; ++j) ASSERT_TRUE(s->Append(Line(i++), kNow).ok());  // at the cap now
  const int64_t kept = s->entries();
  const int kAppends = 600;  // > 32 KiB of new text: at least one compaction in between
  const int64_t before = BytesWrittenByProcess();
  for (int j = 0; j < kAppends; ++j) ASSERT_TRUE(s->Append(Line(i++), kNow).ok());
  const double per_append =
      static_cast<double>(BytesWrittenByProcess() - before) / static_cast<double>(kAppends);
  std::cout << "[ figures  ] bytes written per observe at a 64 KiB cap: " << per_append
            << " (record: 140 bytes; " << s->rotations() << " compactions)\n";
  // A record is 140 bytes; amortized compactions add at most ~2 bytes per byte appended.
  EXPECT_LT(per_append, 4 * 140.0);
  EXPECT_GE(s->rotations(), 1) << "dropped text must leave the file eventually";
  EXPECT_LE(s->text_bytes(), t.options.max_bytes);
  EXPECT_EQ(s->entries(), kept);
  // The file holds the kept text plus at most half as much again of dropped records.
  const int64_t live_file = s->text_bytes() + 40 * s->entries();
  EXPECT_LE(static_cast<int64_t>(fs::file_size(t.File())), live_file * 3 / 2 + 22 + 8192);
  // What is read back (now and after a reopen) is the newest text only, oldest first.
  auto all = s->ReadAll(kNow);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->back().text, Line(i - 1));
  EXPECT_EQ(all->front().text, Line(i - static_cast<int>(kept)));
  auto again = TextStore::Open(t.options, kNow);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->entries(), kept);
  EXPECT_EQ(again->ReadAll(kNow)->front().text, Line(i - static_cast<int>(kept)));
}

TEST(TextStoreHardeningTest, ACompactionRotatesTheKeySoCopiesOfTheOldFileStopOpening) {
  TempStore t("rotate");
  t.options.retention_days = 2;
  auto s = TextStore::Open(t.options, kNow);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(s->Append("the day before yesterday's secret", kNow).ok());
  ASSERT_TRUE(s->Append("also old", kNow).ok());
  const std::string copy = Slurp(t.File());                          // a backup, a flash block
  ASSERT_TRUE(s->Append("today", kNow + 2 * kDay + kDay / 2).ok());  // the first two expire
  // A day later the expired records leave the file: a new data key and store id.
  auto all = s->ReadAll(kNow + 3 * kDay + kDay / 2);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  const std::string current = Slurp(t.File());
  EXPECT_NE(current.substr(6, 16), copy.substr(6, 16)) << "the store id rotates";
  EXPECT_EQ(current.find(copy.substr(22, 40)), std::string::npos);
  Spit(t.File(), copy);
  auto old = TextStore::Open(t.options, kNow);
  EXPECT_EQ(old.status().code(), absl::StatusCode::kDataLoss) << old.status();
  EXPECT_THAT(old.status().message(), HasSubstr("earlier store"));
  Spit(t.File(), current);
  auto back = TextStore::Open(t.options, kNow + 3 * kDay);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->ReadAll(kNow + 3 * kDay)->at(0).text, "today");
}

TEST(TextStoreHardeningTest, GcmInvocationsPerDataKeyAreCountedAndCappedByRotation) {
  TempStore t("invocations");
  t.options.retention_days = 0;
  t.options.max_bytes = 200;  // about ten short lines kept
  t.options.max_records_per_key = 16;
  auto s = TextStore::Open(t.options, kNow);
  ASSERT_TRUE(s.ok());
  std::set<std::string> ids;
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(s->Append("line " + std::to_string(i) + " of the test", kNow).ok());
    EXPECT_LE(s->records_under_key(), 16);
    ids.insert(s->store_id());
  }
  EXPECT_GE(s->rotations(), 100 / 16);
  EXPECT_EQ(static_cast<int64_t>(ids.size()), s->rotations());
  auto again = TextStore::Open(t.options, kNow);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->ReadAll(kNow)->back().text, "line 99 of the test");
  EXPECT_EQ(again->entries(), s->entries());
  // More kept entries than one key may seal: refused with a hint, nothing written.
  TempStore u("invocations_nolimit");
  u.options.max_bytes = 0;
  u.options.max_records_per_key = 4;
  auto n = TextStore::Open(u.options, kNow);
  ASSERT_TRUE(n.ok());
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(n->Append("x", kNow).ok());
  EXPECT_EQ(n->Append("x", kNow).code(), absl::StatusCode::kResourceExhausted);
}

TEST(TextStoreHardeningTest, ARotationCutShortLeavesAStoreThatOpensAndCleansItsKeyRing) {
  TempStore t("rotation_crash");
  t.options.max_bytes = 250;  // two 100-byte lines kept
  t.options.max_records_per_key = 4;
  auto s = TextStore::Open(t.options, kNow);
  ASSERT_TRUE(s.ok());
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(s->Append(Line(i), kNow).ok());
  const std::string before = Slurp(t.File());
  const std::string ring = t.options.dir + "/text.keys";
  const auto one_key = fs::file_size(ring);
  // The fifth append rotates first: the key ring (two keys) fits under the file size limit,
  // the re-sealed store does not (as a full disk or a crash would leave it).
  rlimit old{};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
  signal(SIGXFSZ, SIG_IGN);
  rlimit small = old;
  small.rlim_cur = 250;  // the ring with two keys is 159 bytes, two re-sealed lines 302
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  const absl::Status st = s->Append(Line(4), kNow);
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &old), 0);
  signal(SIGXFSZ, SIG_DFL);
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(Slurp(t.File()), before) << "the old file stays";
  EXPECT_GT(fs::file_size(ring), one_key) << "the ring holds both keys";
  auto again = TextStore::Open(t.options, kNow);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->entries(), 2);
  EXPECT_EQ(fs::file_size(ring), one_key) << "the unused new key is dropped";
  ASSERT_TRUE(again->Append(Line(4), kNow).ok());
  EXPECT_EQ(TextStore::Open(t.options, kNow)->ReadAll(kNow)->back().text, Line(4));
}

TEST(TextStoreHardeningTest, AfterForgetTheNextOpenMayUseANewAppKey) {
  TempStore t("forget_rekey");
  t.options.key_file.clear();
  secagg::Secret32 k1, k2;
  SecureRandom rng;
  rng.Fill(k1.data(), k1.size());
  rng.Fill(k2.data(), k2.size());
  t.options.key = k1;
  {
    auto s = TextStore::Open(t.options, kNow);
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE(s->Append("erase me", kNow).ok());
    ASSERT_TRUE(s->Forget().ok());
  }
  // What the runtime does after forget: reopen at once with the key it still holds.
  {
    auto s = TextStore::Open(t.options, kNow);
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(s->entries(), 0);
  }
  EXPECT_FALSE(fs::exists(t.File())) << "nothing on disk until something is observed again";
  // The app deleted k1 from its key store and opens with a fresh key.
  t.options.key = k2;
  auto s = TextStore::Open(t.options, kNow);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->entries(), 0);
  ASSERT_TRUE(s->Append("new life", kNow).ok());
  auto again = TextStore::Open(t.options, kNow);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->ReadAll(kNow)->at(0).text, "new life");
  t.options.key = k1;  // the old key does not open the new store
  EXPECT_EQ(TextStore::Open(t.options, kNow).status().code(), absl::StatusCode::kDataLoss);
}

TEST(TextStoreHardeningTest, AVersionOneStoreIsReadAndRewrittenAsVersionTwo) {
  TempStore t("v1");
  fs::create_directories(t.options.dir);
  secagg::Secret32 key;
  SecureRandom rng;
  rng.Fill(key.data(), key.size());
  t.options.key = key;
  // "FLTS1\n" || id || records sealed under the store key with "fedlora-text-v1" chains.
  const std::string id(16, 'i');
  std::string file = std::string("FLTS1\n") + id;
  std::string prev(16, '\0');
  for (uint64_t i = 0; i < 2; ++i) {
    std::string aad = "fedlora-text-v1" + id;
    for (int b = 0; b < 8; ++b) aad.push_back(static_cast<char>((i >> (8 * b)) & 0xff));
    aad += prev;
    std::string plain;
    for (int b = 0; b < 8; ++b) plain.push_back(static_cast<char>((kNow >> (8 * b)) & 0xff));
    plain += "old line " + std::to_string(i);
    const std::string sealed = secagg::AeadSeal(key, aad, plain, rng);
    for (int b = 0; b < 4; ++b)
      file.push_back(static_cast<char>((sealed.size() >> (8 * b)) & 0xff));
    file += sealed;
    prev = sealed.substr(sealed.size() - 16);
  }
  Spit(t.File(), file);
  auto s = TextStore::Open(t.options, kNow);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->ReadAll(kNow)->at(1).text, "old line 1");
  EXPECT_EQ(Slurp(t.File()).substr(0, 6), "FLTS2\n");
  ASSERT_TRUE(s->Append("new line", kNow).ok());
  auto again = TextStore::Open(t.options, kNow);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->entries(), 3);
}

}  // namespace
}  // namespace fedlora::device
