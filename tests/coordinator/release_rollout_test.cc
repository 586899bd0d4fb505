// Staged rollout: the rollout hash, which release a device is offered, the operator's
// transitions, the store's release tables and the schema migration from version 1.
#include "fedlora/coordinator/release_rollout.h"

#include <sqlite3.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "coordinator/store_testutil.h"
#include "fedlora/common/ed25519.h"
#include "fedlora/common/release.h"
#include "fedlora/coordinator/store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora::coordinator {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

const std::string kBase(64, 'b');

ReleaseRecord Rec(uint64_t version, const std::string& state, double percent) {
  ReleaseRecord r;
  r.version = version;
  r.release_id = absl::StrCat("r", version);
  r.base_model_sha256 = kBase;
  r.bundle_sha256 = std::string(64, 'a' + static_cast<char>(version % 6));
  r.state = state;
  r.percent = percent;
  ReleaseManifest m;
  m.release_id = r.release_id;
  m.version = version;
  m.base_model_sha256 = kBase;
  m.created = "2026-11-29T00:00:00Z";
  m.files.push_back({"adapter/adapter_config.json", std::string(64, '0'), 1});
  m.key_id = "0123456789abcdef";
  m.signature = std::string(64, 's');
  r.manifest_json = ManifestToJson(m).dump();
  return r;
}

std::string SignedRollback(uint64_t from, const ReleaseRecord& to, const std::string& base) {
  auto key = Ed25519Key::Generate();
  RollbackInstruction r;
  r.from_version = from;
  r.to_version = to.version;
  r.to_release_id = to.release_id;
  r.base_model_sha256 = base;
  r.created = "2026-11-29T00:00:00Z";
  EXPECT_TRUE(SignRollback(*key, &r).ok());
  return RollbackToJson(r).dump();
}

DeviceReleaseQuery Query(const std::string& device, uint64_t running) {
  DeviceReleaseQuery q;
  q.device_id = device;
  q.base_model_sha256 = kBase;
  q.running_version = running;
  return q;
}

TEST(RolloutBucketTest, IsStableUniformAndGrowsAsASuperset) {
  EXPECT_EQ(RolloutBucket("dev-1", "r2"), RolloutBucket("dev-1", "r2"));
  EXPECT_NE(RolloutBucket("dev-1", "r2"), RolloutBucket("dev-1", "r3"));
  int at10 = 0, at30 = 0, lost = 0;
  for (int i = 0; i < 4000; ++i) {
    const double b = RolloutBucket(absl::StrCat("dev-", i), "r2");
    ASSERT_GE(b, 0.0);
    ASSERT_LT(b, 100.0);
    at10 += b < 10;
    at30 += b < 30;
    lost += b < 10 && !(b < 30);
  }
  EXPECT_EQ(lost, 0);
  // Binomial(4000, p): 5 standard deviations either side.
  EXPECT_NEAR(at10, 400, 5 * 19);
  EXPECT_NEAR(at30, 1200, 5 * 29);
}

TEST(ChooseReleaseTest, RollingCandidateGoesOnlyToItsShareOthersGetTheStableRelease) {
  std::vector<ReleaseRecord> rs = {Rec(1, "complete", 100), Rec(2, "rolling", 30)};
  int offered_candidate = 0;
  for (int i = 0; i < 1000; ++i) {
    const std::string dev = absl::StrCat("dev-", i);
    ReleaseDecision fresh = ChooseRelease(rs, Query(dev, 0));
    ASSERT_TRUE(fresh.offered);
    const bool in = RolloutBucket(dev, "r2") < 30;
    EXPECT_EQ(fresh.release.version, in ? 2u : 1u) << dev;
    offered_candidate += in;
    ReleaseDecision on_stable = ChooseRelease(rs, Query(dev, 1));
    EXPECT_EQ(on_stable.offered, in);
    EXPECT_TRUE(on_stable.rollback_json.empty());
  }
  EXPECT_GT(offered_candidate, 200);
  EXPECT_LT(offered_candidate, 400);
  // Running the candidate: keep it.
  EXPECT_FALSE(ChooseRelease(rs, Query("dev-1", 2)).offered);
}

TEST(ChooseReleaseTest, HaltKeepsWhoHasItAndOffersNoOneNew) {
  std::vector<ReleaseRecord> rs = {Rec(1, "complete", 100), Rec(2, "halted", 100 - 1e-9)};
  EXPECT_FALSE(ChooseRelease(rs, Query("dev-a", 2)).offered);
  ReleaseDecision d = ChooseRelease(rs, Query("dev-a", 1));
  EXPECT_FALSE(d.offered);
  EXPECT_THAT(d.detail, HasSubstr("up to date"));
  d = ChooseRelease(rs, Query("dev-a", 0));
  ASSERT_TRUE(d.offered);
  EXPECT_EQ(d.release.version, 1u);
}

TEST(ChooseReleaseTest, RolledBackReleaseSendsItsDevicesBackWithTheSignedInstruction) {
  std::vector<ReleaseRecord> rs = {Rec(1, "complete", 100), Rec(2, "rolled_back", 100)};
  rs[1].rollback_json = SignedRollback(2, rs[0], kBase);
  ReleaseDecision d = ChooseRelease(rs, Query("dev-a", 2));
  ASSERT_TRUE(d.offered);
  EXPECT_EQ(d.release.version, 1u);
  EXPECT_EQ(d.rollback_json, rs[1].rollback_json);
  // Devices on the stable release are left alone; new ones get it with no instruction.
  EXPECT_FALSE(ChooseRelease(rs, Query("dev-b", 1)).offered);
  d = ChooseRelease(rs, Query("dev-c", 0));
  ASSERT_TRUE(d.offered);
  EXPECT_TRUE(d.rollback_json.empty());
}

TEST(ChooseReleaseTest, OtherBaseOtherSegmentAndARefusedVersionAreNotOffered) {
  std::vector<ReleaseRecord> rs = {Rec(1, "complete", 100)};
  DeviceReleaseQuery q = Query("dev-a", 0);
  q.base_model_sha256 = std::string(64, 'c');
  EXPECT_FALSE(ChooseRelease(rs, q).offered);
  q = Query("dev-a", 0);
  q.segment = "assistant";
  EXPECT_FALSE(ChooseRelease(rs, q).offered);
  q = Query("dev-a", 0);
  q.fell_back_from = 1;
  EXPECT_FALSE(ChooseRelease(rs, q).offered);
  rs.push_back(Rec(2, "rolling", 100 - 1e-9));
  q = Query("dev-a", 1);
  q.fell_back_from = 2;
  EXPECT_FALSE(ChooseRelease(rs, q).offered);
}

TEST(RolloutTransitionTest, PromoteOnlyGrowsAndCompletesAtOneHundred) {
  ReleaseRecord r = Rec(2, "rolling", 10);
  auto up = Promote(r, 50);
  ASSERT_TRUE(up.ok());
  EXPECT_EQ(up->state, "rolling");
  EXPECT_EQ(up->percent, 50);
  auto down = Promote(*up, 20);
  EXPECT_EQ(down.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(down.status().message()), HasSubstr("never shrinks"));
  EXPECT_EQ(Promote(r, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Promote(r, 101).status().code(), absl::StatusCode::kInvalidArgument);
  auto halted = Halt(*up);
  ASSERT_TRUE(halted.ok());
  EXPECT_EQ(Halt(*halted).status().code(), absl::StatusCode::kFailedPrecondition);
  auto done = Promote(*halted, 100);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state, "complete");
  EXPECT_EQ(Promote(*done, 100).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(RolloutTransitionTest, RollbackNeedsAnEarlierCompleteReleaseAndAMatchingInstruction) {
  std::vector<ReleaseRecord> rs = {Rec(1, "complete", 100), Rec(2, "rolling", 40)};
  EXPECT_EQ(RollBack(rs[0], rs, SignedRollback(1, rs[0], kBase)).status().code(),
            absl::StatusCode::kFailedPrecondition);  // nothing below version 1
  EXPECT_EQ(RollBack(rs[1], rs, SignedRollback(3, rs[0], kBase)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RollBack(rs[1], rs, SignedRollback(2, rs[0], std::string(64, 'c'))).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(RollBack(rs[1], rs, "not json").ok());
  auto back = RollBack(rs[1], rs, SignedRollback(2, rs[0], kBase));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->state, "rolled_back");
  EXPECT_EQ(RollBack(*back, rs, back->rollback_json).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

class ReleaseStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/release_store_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
  }
  std::unique_ptr<Store> Open() {
    auto s = OpenSqliteStore(dir_);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }
  std::string dir_;
};

// The release part of the store contract, on every engine (coordinator/store_testutil.h).
class ReleaseStoreContractTest : public testing::StoreEngineTest {};
INSTANTIATE_TEST_SUITE_P(Engines, ReleaseStoreContractTest,
                         ::testing::ValuesIn(testing::StoreEngines()), testing::EngineName);

TEST_P(ReleaseStoreContractTest, PublishUpdateAndReportSurviveReopeningAndKeepTheEventLog) {
  {
    auto store = Open();
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->PublishRelease(Rec(1, "complete", 100), "bundle-one").ok());
    ReleaseRecord two = Rec(2, "rolling", 5);
    ASSERT_TRUE(store->PublishRelease(two, "bundle-two").ok());
    // One live release per segment, versions only grow, ids and versions unique.
    EXPECT_EQ(store->PublishRelease(Rec(3, "rolling", 0), "x").code(),
              absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(store->PublishRelease(Rec(2, "rolling", 0), "x").code(),
              absl::StatusCode::kAlreadyExists);
    ReleaseRecord bad = Rec(4, "rolling", 0);
    bad.percent = 140;
    EXPECT_EQ(store->PublishRelease(bad, "x").code(), absl::StatusCode::kInvalidArgument);
    auto promoted = Promote(two, 60);
    ASSERT_TRUE(store->UpdateRelease(*promoted, "promote").ok());
    EXPECT_EQ(store->UpdateRelease(Rec(9, "rolling", 1), "promote").code(),
              absl::StatusCode::kNotFound);
    ASSERT_TRUE(store->RecordDeviceRelease({"dev-a", 1, 0, 0}).ok());
    ASSERT_TRUE(store->RecordDeviceRelease({"dev-a", 2, 0, 0}).ok());
    ASSERT_TRUE(store->RecordDeviceRelease({"dev-b", 1, 2, 0}).ok());
    EXPECT_EQ(store->RecordDeviceRelease({"", 1, 0, 0}).code(),
              absl::StatusCode::kInvalidArgument);
  }
  auto store = Open();
  ASSERT_TRUE(store);
  auto rs = store->ListReleases();
  ASSERT_TRUE(rs.ok());
  ASSERT_EQ(rs->size(), 2u);
  EXPECT_EQ((*rs)[1].state, "rolling");
  EXPECT_EQ((*rs)[1].percent, 60);
  EXPECT_EQ((*rs)[1].bundle_bytes, 10u);
  auto blob = store->ReadBlob((*rs)[1].bundle_sha256);
  ASSERT_TRUE(blob.ok());
  EXPECT_EQ(*blob, "bundle-two");
  auto events = store->ListReleaseEvents();
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 3u);
  EXPECT_EQ((*events)[2].action, "promote");
  EXPECT_EQ((*events)[2].percent, 60);
  auto reports = store->ListDeviceReleases();
  ASSERT_TRUE(reports.ok());
  ASSERT_EQ(reports->size(), 2u);
  EXPECT_EQ((*reports)[0].running_version, 2u);  // the latest report replaces the first
  EXPECT_EQ((*reports)[1].fell_back_from, 2u);
}

TEST_F(ReleaseStoreTest, AVersionOneStateFolderIsMigratedAndKeepsItsRows) {
  {
    auto store = Open();
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->AddEnrollmentTokens({Sha256Hex("t")}).ok());
    DeviceRecord d;
    d.device_id = "dev-old";
    d.public_key = std::string(32, 'k');
    ASSERT_TRUE(store->EnrollDevice(Sha256Hex("t"), d).ok());
    ASSERT_TRUE(store->PutInitialAdapter("initial adapter").ok());
  }
  {  // Make it exactly what a version-1 build wrote.
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ + "/coordinator.db").c_str(), &db), SQLITE_OK);
    for (const char* sql : {"DROP TABLE release_events", "DROP TABLE releases",
                            "DROP TABLE device_releases", "PRAGMA user_version = 1"}) {
      ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sql;
    }
    sqlite3_close(db);
  }
  auto store = Open();
  ASSERT_TRUE(store);
  auto dev = store->GetDevice("dev-old");
  ASSERT_TRUE(dev.ok());
  auto latest = store->LatestAdapter();
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(latest->version, 1u);
  ASSERT_TRUE(store->PublishRelease(Rec(1, "complete", 100), "b").ok());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ + "/coordinator.db").c_str(), &db), SQLITE_OK);
  sqlite3_stmt* q = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(q), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(q, 0), 2);
  sqlite3_finalize(q);
  sqlite3_close(db);
}

}  // namespace
}  // namespace fedlora::coordinator
