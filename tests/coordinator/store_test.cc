#include "fedlora/coordinator/store.h"

#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "coordinator/store_testutil.h"
#include "fedlora/common/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora::coordinator {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

std::string Key(char c) { return std::string(32, c); }
DeviceRecord Dev(const std::string& id, const std::string& key, int64_t enrolled_unix = 0) {
  DeviceRecord d;
  d.device_id = id;
  d.public_key = key;
  d.enrolled_unix = enrolled_unix;
  return d;
}
std::string Token(int i) { return Sha256Hex(absl::StrCat("token-", i)); }
using testing::AdapterFor;
using testing::ChargeFor;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "/store_test_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    dir_ = root_ + "/state";
  }
  void TearDown() override {
    ::chmod(dir_.c_str(), 0700);
    fs::remove_all(root_);
  }
  std::unique_ptr<Store> Open() {
    auto s = OpenSqliteStore(dir_);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }
  // Runs one SQL statement on coordinator.db outside the store (to simulate other writers).
  void RawExec(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ + "/coordinator.db").c_str(), &db), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    sqlite3_close(db);
  }
  std::string root_, dir_;
};

// The store contract (store.h), run against every engine this build has (SQLite and, with
// libpq, PostgreSQL on a throwaway server: coordinator/store_testutil.h).
class StoreContractTest : public testing::StoreEngineTest {};
INSTANTIATE_TEST_SUITE_P(Engines, StoreContractTest, ::testing::ValuesIn(testing::StoreEngines()),
                         testing::EngineName);

TEST_F(StoreTest, CreatesPrivateFolderWalDatabaseAndBlobs) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  struct stat st;
  ASSERT_EQ(::stat(dir_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_TRUE(fs::is_directory(dir_ + "/blobs"));
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ + "/coordinator.db").c_str(), &db), SQLITE_OK);
  sqlite3_stmt* q = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(q), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(q, 0)), "wal");
  sqlite3_finalize(q);
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(q), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(q, 0), kStoreSchemaVersion);
  sqlite3_finalize(q);
  sqlite3_close(db);
}

TEST_F(StoreTest, Sha256HexMatchesKnownVector) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_P(StoreContractTest, EnrolmentTokensAndDevices) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->AddEnrollmentTokens({Token(1), "not-hex"}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*store->CountUnusedTokens(), 0);  // nothing of the refused batch was added
  ASSERT_TRUE(store->AddEnrollmentTokens({Token(1), Token(2), Token(3)}).ok());
  ASSERT_TRUE(store->AddEnrollmentTokens({Token(3)}).ok());  // already present: unchanged
  EXPECT_EQ(*store->CountUnusedTokens(), 3);

  DeviceRecord b{"dev-b", Key('b'), 0, false, ""};
  ASSERT_TRUE(store->EnrollDevice(Token(1), b).ok());
  EXPECT_EQ(*store->CountUnusedTokens(), 2);
  absl::Status reused = store->EnrollDevice(Token(1), Dev("dev-c", Key('c')));
  EXPECT_EQ(reused.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(reused.message(), HasSubstr("already used"));
  EXPECT_THAT(reused.message(), HasSubstr("dev-b"));
  absl::Status taken = store->EnrollDevice(Token(2), Dev("dev-b", Key('x')));
  EXPECT_EQ(taken.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(taken.message(), HasSubstr("already enrolled"));
  EXPECT_EQ(*store->CountUnusedTokens(), 2);  // the refused enrolment did not use the token
  EXPECT_EQ(store->EnrollDevice(Token(9), Dev("dev-z", Key('z'))).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store->EnrollDevice(Token(2), Dev("dev-s", "short")).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->EnrollDevice(Token(2), Dev("", Key('e'))).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->EnrollDevice("ABC", Dev("dev-q", Key('q'))).code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(store->EnrollDevice(Token(2), Dev("dev-a", Key('a'), 1234)).ok());

  auto got = store->GetDevice("dev-b");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->public_key, Key('b'));
  EXPECT_GT(got->enrolled_unix, 1'600'000'000);
  EXPECT_FALSE(got->revoked);
  EXPECT_EQ(store->GetDevice("dev-a")->enrolled_unix, 1234);
  EXPECT_EQ(store->GetDevice("nobody").status().code(), absl::StatusCode::kNotFound);
  auto list = store->ListDevices();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].device_id, "dev-a");
  EXPECT_EQ((*list)[1].device_id, "dev-b");

  ASSERT_TRUE(store->RevokeDevice("dev-b", "key leaked").ok());
  ASSERT_TRUE(store->RevokeDevice("dev-b", "second reason").ok());
  got = store->GetDevice("dev-b");
  EXPECT_TRUE(got->revoked);
  EXPECT_EQ(got->revoked_reason, "key leaked");
  EXPECT_EQ(store->RevokeDevice("nobody", "x").code(), absl::StatusCode::kNotFound);
}

TEST_P(StoreContractTest, RoundLifecycleAndErrors) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->BeginRound(0, 5).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->BeginRound(1, -1).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(store->BeginRound(1, 5).ok());
  EXPECT_EQ(store->BeginRound(1, 5).code(), absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(store->SetRoundPhase(1, "share_keys").ok());
  EXPECT_EQ(store->SetRoundPhase(7, "x").code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(store->AbortRound(1, "3 survivors < min_clients 4").ok());
  EXPECT_EQ(store->AbortRound(1, "again").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->SetRoundPhase(1, "unmask").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->AbortRound(9, "x").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->BeginRound(1, 5).code(), absl::StatusCode::kAlreadyExists);  // never reused
  ASSERT_TRUE(store->BeginRound(3, 7).ok());
  ASSERT_TRUE(store->BeginRound(2, 6).ok());

  auto rounds = store->ListRounds();
  ASSERT_TRUE(rounds.ok());
  ASSERT_EQ(rounds->size(), 3u);
  EXPECT_EQ((*rounds)[0].round, 1u);
  EXPECT_EQ((*rounds)[0].state, "aborted");
  EXPECT_EQ((*rounds)[0].phase, "share_keys");
  EXPECT_EQ((*rounds)[0].abort_reason, "3 survivors < min_clients 4");
  EXPECT_EQ((*rounds)[0].selected, 5);
  EXPECT_GE((*rounds)[0].ended_unix, (*rounds)[0].started_unix);
  EXPECT_EQ((*rounds)[1].round, 2u);
  EXPECT_EQ((*rounds)[2].round, 3u);
  auto running = store->RunningRounds();
  ASSERT_TRUE(running.ok());
  ASSERT_EQ(running->size(), 2u);
  EXPECT_EQ((*running)[0].round, 2u);
  EXPECT_EQ((*running)[0].state, "running");
  EXPECT_FALSE((*running)[0].charged);
}

TEST_P(StoreContractTest, ChargesAndParticipation) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->ChargeRound(ChargeFor(1), {"a"}).code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(store->BeginRound(1, 3).ok());
  ASSERT_TRUE(store->BeginRound(2, 3).ok());
  EXPECT_EQ(store->ChargeRound(ChargeFor(2), {"a", "b", "a"}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->ChargeRound(ChargeFor(2), {"a", ""}).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(store->ChargeRound(ChargeFor(2), {"a", "b"}).ok());
  absl::Status twice = store->ChargeRound(ChargeFor(2), {"a"});
  EXPECT_EQ(twice.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(twice.message(), HasSubstr("already charged"));
  PrivacyCharge c1 = ChargeFor(1);
  c1.unix = 42;
  ASSERT_TRUE(store->ChargeRound(c1, {"b", "c"}).ok());
  // An aborted round keeps its charge (the privacy was spent).
  ASSERT_TRUE(store->AbortRound(1, "dropouts").ok());
  ASSERT_TRUE(store->BeginRound(3, 3).ok());
  ASSERT_TRUE(store->AbortRound(3, "x").ok());
  EXPECT_EQ(store->ChargeRound(ChargeFor(3), {"a"}).code(), absl::StatusCode::kFailedPrecondition);

  auto charges = store->Charges();
  ASSERT_TRUE(charges.ok());
  ASSERT_EQ(charges->size(), 2u);
  EXPECT_EQ((*charges)[0].round, 1u);
  EXPECT_EQ((*charges)[0].unix, 42);
  EXPECT_EQ((*charges)[0].mechanism, "{\"round\":1}");
  EXPECT_EQ((*charges)[1].round, 2u);
  EXPECT_DOUBLE_EQ((*charges)[1].epsilon_after, 0.2);
  EXPECT_GT((*charges)[1].unix, 1'600'000'000);
  auto counts = store->ParticipationCounts();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(*counts, (std::map<std::string, int>{{"a", 1}, {"b", 2}, {"c", 1}}));
  auto rounds = store->ListRounds();
  EXPECT_TRUE((*rounds)[1].charged);
  EXPECT_DOUBLE_EQ((*rounds)[1].epsilon_after, 0.2);
  EXPECT_FALSE((*rounds)[2].charged);
}

TEST_P(StoreContractTest, AdaptersInitialCommitAndOptimizerState) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->LatestAdapter().status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(*store->OptimizerState(), "");
  auto v1 = store->PutInitialAdapter(AdapterFor(0));
  ASSERT_TRUE(v1.ok()) << v1.status();
  EXPECT_EQ(v1->version, 1u);
  EXPECT_EQ(v1->round, 0u);
  EXPECT_EQ(v1->sha256, Sha256Hex(AdapterFor(0)));
  EXPECT_EQ(v1->bytes, AdapterFor(0).size());
  EXPECT_EQ(store->PutInitialAdapter("other").status().code(), absl::StatusCode::kAlreadyExists);

  ASSERT_TRUE(store->BeginRound(1, 4).ok());
  const size_t blobs_before = engine_->BlobCount();
  absl::Status uncharged = store->CommitRound(1, 4, AdapterFor(1), "opt").status();
  EXPECT_EQ(uncharged.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(uncharged.message(), HasSubstr("never charged"));
  EXPECT_EQ(engine_->BlobCount(), blobs_before);
  EXPECT_EQ(store->RunningRounds()->size(), 1u);
  EXPECT_EQ(store->CommitRound(5, 4, "x", "").status().code(), absl::StatusCode::kNotFound);

  ASSERT_TRUE(store->ChargeRound(ChargeFor(1), {"a"}).ok());
  EXPECT_EQ(store->CommitRound(1, -1, "x", "").status().code(), absl::StatusCode::kInvalidArgument);
  auto v2 = store->CommitRound(1, 3, AdapterFor(1), "adam-moments-1");
  ASSERT_TRUE(v2.ok()) << v2.status();
  EXPECT_EQ(v2->version, 2u);
  EXPECT_EQ(v2->round, 1u);
  EXPECT_EQ(store->CommitRound(1, 3, AdapterFor(1), "").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(*store->OptimizerState(), "adam-moments-1");
  auto rounds = store->ListRounds();
  EXPECT_EQ((*rounds)[0].state, "committed");
  EXPECT_EQ((*rounds)[0].summed, 3);
  EXPECT_TRUE(store->RunningRounds()->empty());

  ASSERT_TRUE(store->BeginRound(2, 4).ok());
  ASSERT_TRUE(store->ChargeRound(ChargeFor(2), {"a"}).ok());
  auto v3 = store->CommitRound(2, 4, AdapterFor(2), "");
  ASSERT_TRUE(v3.ok());
  EXPECT_EQ(v3->version, 3u);
  EXPECT_EQ(*store->OptimizerState(), "");  // the latest commit carries none
  EXPECT_EQ(store->LatestAdapter()->version, 3u);
  auto versions = store->ListAdapterVersions();
  ASSERT_TRUE(versions.ok());
  ASSERT_EQ(versions->size(), 3u);
  for (uint64_t i = 0; i < 3; ++i) {
    EXPECT_EQ((*versions)[i].version, i + 1);
    EXPECT_EQ((*versions)[i].round, i);
    EXPECT_EQ(*store->ReadBlob((*versions)[i].sha256), AdapterFor(i));
  }
}

TEST_P(StoreContractTest, ReadBlobDetectsTamperingAndBadNames) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto v = store->PutInitialAdapter("initial adapter bytes");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*store->ReadBlob(v->sha256), "initial adapter bytes");
  engine_->TamperBlob(v->sha256, "initial adapter bytez");
  absl::Status tampered = store->ReadBlob(v->sha256).status();
  EXPECT_EQ(tampered.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(tampered.message(), HasSubstr("modified or corrupted"));
  EXPECT_EQ(store->ReadBlob(Sha256Hex("never stored")).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store->ReadBlob("../coordinator.db").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->ReadBlob(std::string(64, 'A')).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(StoreContractTest, MetaValues) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->GetMeta("recipe").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->PutMeta("", "x").code(), absl::StatusCode::kInvalidArgument);
  const std::string binary("a\0b\xff", 4);
  ASSERT_TRUE(store->PutMeta("recipe", "{\"dp\":1}").ok());
  ASSERT_TRUE(store->PutMeta("id", binary).ok());
  ASSERT_TRUE(store->PutMeta("recipe", "{\"dp\":2}").ok());
  EXPECT_EQ(*store->GetMeta("recipe"), "{\"dp\":2}");
  EXPECT_EQ(*store->GetMeta("id"), binary);
  ASSERT_TRUE(store->PutMeta("empty", "").ok());
  EXPECT_EQ(*store->GetMeta("empty"), "");
}

TEST_P(StoreContractTest, ReopenKeepsEverything) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->AddEnrollmentTokens({Token(1), Token(2)}).ok());
    ASSERT_TRUE(store->EnrollDevice(Token(1), Dev("d1", Key('1'))).ok());
    ASSERT_TRUE(store->RevokeDevice("d1", "lost").ok());
    ASSERT_TRUE(store->PutInitialAdapter(AdapterFor(0)).ok());
    ASSERT_TRUE(store->BeginRound(1, 2).ok());
    ASSERT_TRUE(store->ChargeRound(ChargeFor(1), {"d1"}).ok());
    ASSERT_TRUE(store->CommitRound(1, 1, AdapterFor(1), "opt").ok());
    ASSERT_TRUE(store->BeginRound(2, 2).ok());
    ASSERT_TRUE(store->SetRoundPhase(2, "masked_input").ok());
    ASSERT_TRUE(store->PutMeta("coordinator_id", "c-1").ok());
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(*store->CountUnusedTokens(), 1);
  EXPECT_EQ(store->GetDevice("d1")->revoked_reason, "lost");
  EXPECT_EQ(store->LatestAdapter()->version, 2u);
  EXPECT_EQ(*store->ReadBlob(store->LatestAdapter()->sha256), AdapterFor(1));
  EXPECT_EQ(*store->OptimizerState(), "opt");
  ASSERT_EQ(store->RunningRounds()->size(), 1u);
  EXPECT_EQ((*store->RunningRounds())[0].phase, "masked_input");
  EXPECT_EQ(store->Charges()->size(), 1u);
  EXPECT_EQ(store->ParticipationCounts()->at("d1"), 1);
  EXPECT_EQ(*store->GetMeta("coordinator_id"), "c-1");
  EXPECT_EQ(store->BeginRound(1, 2).code(), absl::StatusCode::kAlreadyExists);
}

TEST_F(StoreTest, TrailingSlashNamesTheSameFolder) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->PutInitialAdapter(AdapterFor(0)).ok());
  }
  auto again = OpenSqliteStore(dir_ + "/");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->LatestAdapter()->version, 1u);
}

TEST_P(StoreContractTest, ConcurrentCallsAreSerialized) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&store, t] {
      for (int i = 0; i < 25; ++i) {
        uint64_t r = static_cast<uint64_t>(t * 100 + i + 1);
        EXPECT_TRUE(store->BeginRound(r, 1).ok());
        EXPECT_TRUE(store->ChargeRound(ChargeFor(r), {absl::StrCat("dev", t)}).ok());
        EXPECT_TRUE(store->CommitRound(r, 1, absl::StrCat("blob", r), "").ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  auto versions = store->ListAdapterVersions();
  ASSERT_EQ(versions->size(), 100u);
  EXPECT_EQ(versions->back().version, 100u);
  EXPECT_EQ(store->ParticipationCounts()->at("dev2"), 25);
}

// ---- Damaged or foreign state folders.

TEST_F(StoreTest, FileThatIsNotADatabase) {
  ASSERT_TRUE(MakeDirs(dir_).ok());
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/coordinator.db", std::string(8192, 'x')).ok());
  auto s = OpenSqliteStore(dir_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.status().message(), HasSubstr("not an SQLite database"));
  EXPECT_THAT(s.status().message(), HasSubstr("hint"));
}

TEST_F(StoreTest, CorruptedPagesAreDetected) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    for (uint64_t r = 1; r <= 30; ++r) {
      ASSERT_TRUE(store->BeginRound(r, 1).ok());
      ASSERT_TRUE(store->PutMeta(absl::StrCat("k", r), std::string(500, 'm')).ok());
    }
  }  // closing checkpoints the WAL into coordinator.db
  const std::string path = dir_ + "/coordinator.db";
  auto bytes = ReadFileToString(path);
  ASSERT_TRUE(bytes.ok());
  ASSERT_GT(bytes->size(), 3 * 4096u);
  for (size_t i = 4096; i < bytes->size(); ++i) (*bytes)[i] = static_cast<char>(i * 7 + 3);
  ASSERT_TRUE(WriteFileAtomic(path, *bytes).ok());
  auto s = OpenSqliteStore(dir_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss) << s.status();
  EXPECT_THAT(s.status().message(), HasSubstr("backup"));
}

TEST_F(StoreTest, NewerSchemaIsRefused) {
  { ASSERT_NE(Open(), nullptr); }
  RawExec("PRAGMA user_version = 99");
  auto s = OpenSqliteStore(dir_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.status().message(), HasSubstr("schema version 99, newer than"));
  EXPECT_THAT(s.status().message(), HasSubstr("newer fedlora"));
}

TEST_F(StoreTest, ForeignDatabaseAndPlainFileAreRefused) {
  ASSERT_TRUE(MakeDirs(dir_).ok());
  RawExec("CREATE TABLE photos (id INTEGER)");
  auto s = OpenSqliteStore(dir_);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.status().message(), HasSubstr("something else"));

  ASSERT_TRUE(WriteFileAtomic(root_ + "/plain_file", "x").ok());
  EXPECT_EQ(OpenSqliteStore(root_ + "/plain_file").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// Runs `check` (returns true on success) as an unprivileged user: in a child that drops root
// (root ignores folder permissions) or directly when not root.
bool AsUnprivileged(const std::function<bool()>& check) {
  if (::geteuid() != 0) return check();
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(3);
    ::_exit(check() ? 0 : 1);
  }
  int status = 0;
  return pid > 0 && ::waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
         WEXITSTATUS(status) == 0;
}

TEST_F(StoreTest, UnwritableFolderIsRefusedWithHint) {
  const std::string locked = root_ + "/locked";
  ASSERT_TRUE(MakeDirs(locked).ok());
  ASSERT_EQ(::chmod(root_.c_str(), 0755), 0);
  ASSERT_EQ(::chmod(locked.c_str(), 0555), 0);
  EXPECT_TRUE(AsUnprivileged([&] {
    auto denied = OpenSqliteStore(locked);
    auto sub = OpenSqliteStore(locked + "/sub");
    return denied.status().code() == absl::StatusCode::kPermissionDenied &&
           absl::StrContains(denied.status().message(), "not writable") &&
           absl::StrContains(denied.status().message(), "hint") &&
           sub.status().code() == absl::StatusCode::kPermissionDenied;
  }));
  ::chmod(locked.c_str(), 0700);
}

}  // namespace
}  // namespace fedlora::coordinator
