// Release freshness on the device (device/release_freshness.h): the coordinator's signed,
// expiring timestamp is required once seen, refused when stale, older than seen, altered, for
// another segment or by a revoked key, and an answer that withholds the signed newest version
// is refused.
#include "fedlora/device/release_freshness.h"

#include <filesystem>
#include <memory>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora::device {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr int64_t kNow = 1'800'000'000;
const std::string kBase(64, 'b');

class ReleaseFreshnessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/fresh_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    auto k = Ed25519Key::Generate();
    ASSERT_TRUE(k.ok());
    key_ = std::make_unique<Ed25519Key>(std::move(*k));
    trust_.Add(std::string(key_->PublicRaw()));
    check_.state_dir = dir_;
    check_.base_model_sha256 = kBase;
    check_.trust = &trust_;
    check_.now_unix = kNow;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Signed(uint64_t newest, int64_t issued, int64_t expires,
                     const std::string& segment = "global") {
    ReleaseTimestamp t;
    t.segment = segment;
    t.newest_version = newest;
    t.base_model_sha256 = kBase;
    t.issued_unix = issued;
    t.expires_unix = expires;
    EXPECT_TRUE(SignTimestamp(*key_, &t).ok());
    return TimestampToJson(t).dump();
  }

  std::string dir_;
  std::unique_ptr<Ed25519Key> key_;
  TrustStore trust_;
  FreshnessCheck check_;
};

TEST_F(ReleaseFreshnessTest, ATimestampIsOptionalUntilSeenThenRequired) {
  auto none = CheckReleaseTimestamp("", check_);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->has_value()) << "an older coordinator: accepted";
  FreshnessCheck strict = check_;
  strict.require = true;
  EXPECT_EQ(CheckReleaseTimestamp("", strict).status().code(),
            absl::StatusCode::kFailedPrecondition);
  auto ok = CheckReleaseTimestamp(Signed(4, kNow - 60, kNow + 86400), check_);
  ASSERT_TRUE(ok.ok()) << ok.status();
  ASSERT_TRUE(ok->has_value());
  EXPECT_EQ((*ok)->newest_version, 4u);
  auto dropped = CheckReleaseTimestamp("", check_);
  EXPECT_EQ(dropped.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(dropped.status().message(), HasSubstr("no signed timestamp"));
}

TEST_F(ReleaseFreshnessTest, StaleOlderAlteredForeignOrRevokedTimestampsAreRefused) {
  auto stale = CheckReleaseTimestamp(Signed(4, kNow - 10 * 86400, kNow - 3 * 86400), check_);
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(stale.status().message(), HasSubstr("stale"));
  ASSERT_TRUE(CheckReleaseTimestamp(Signed(4, kNow - 60, kNow + 86400), check_).ok());
  auto replayed = CheckReleaseTimestamp(Signed(3, kNow - 3600, kNow + 86400), check_);
  EXPECT_EQ(replayed.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(replayed.status().message(), HasSubstr("older than one this device saw"));
  auto j = nlohmann::json::parse(Signed(4, kNow, kNow + 86400));
  j["newest_version"] = 3;
  EXPECT_EQ(CheckReleaseTimestamp(j.dump(), check_).status().code(),
            absl::StatusCode::kUnauthenticated);
  auto beta = CheckReleaseTimestamp(Signed(9, kNow, kNow + 86400, "beta"), check_);
  EXPECT_EQ(beta.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(beta.status().message(), HasSubstr("segment \"beta\""));
  trust_.Revoke(KeyId(key_->PublicRaw()));
  EXPECT_EQ(CheckReleaseTimestamp(Signed(5, kNow, kNow + 86400), check_).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(CheckReleaseTimestamp("{}", check_).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ReleaseFreshnessTest, AnAnswerThatWithholdsTheSignedNewestVersionIsRefused) {
  ReleaseTimestamp t;
  t.newest_version = 5;
  ReleaseState state;
  state.current = InstalledRelease{3, "r3", dir_ + "/releases/3"};
  auto frozen = CheckNotWithheld(t, state, /*offered=*/false, 0);
  EXPECT_EQ(frozen.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(frozen.message(), HasSubstr("freezing"));
  EXPECT_EQ(CheckNotWithheld(t, state, true, 4).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(CheckNotWithheld(t, state, true, 5).ok());
  EXPECT_TRUE(CheckNotWithheld(t, state, true, 6).ok()) << "a rolling newer release";
  state.rejected = {5};
  EXPECT_TRUE(CheckNotWithheld(t, state, false, 0).ok()) << "the device refused 5 itself";
  state.rejected.clear();
  state.retired = {5};
  EXPECT_TRUE(CheckNotWithheld(t, state, false, 0).ok()) << "a signed rollback retired 5";
  state.retired.clear();
  state.current->version = 5;
  EXPECT_TRUE(CheckNotWithheld(t, state, false, 0).ok());
}

}  // namespace
}  // namespace fedlora::device
