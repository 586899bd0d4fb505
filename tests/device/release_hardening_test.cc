// Releases on a device, hardened (issue 31): a version a signed rollback retired is never
// installed again, whoever offers it; a release made for another segment is refused.
#include <filesystem>

#include "fedlora/common/release.h"
#include "fedlora/device/release_install.h"
#include "fedlora/io/model_identity.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testutil/cli_runner.h"

namespace fedlora::device {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const std::string kFixture = std::string(FEDLORA_SHARED_DIR) + "/fixtures/hf-tiny-llama";

class ReleaseHardeningTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kFixture + "/base")) GTEST_SKIP() << "no ../shared fixture";
    root_ = ::testing::TempDir() + "/relhard_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(root_);
    fs::create_directories(root_);
    ASSERT_EQ(Run("keys new --out " + root_ + "/op.key").exit_code, 0);
  }
  void TearDown() override { fs::remove_all(root_); }

  testing::CliResult Run(const std::string& args) { return testing::RunFedlora(args, root_); }

  std::string Release(int version, const std::string& extra = "") {
    const std::string out = root_ + "/r" + std::to_string(version);
    auto r = Run("release create --adapter " + kFixture + "/adapter --base " + kFixture +
                 "/base --version " + std::to_string(version) + " --key " + root_ +
                 "/op.key --rounds 3 --epsilon 2.5 --delta 1e-5 --out " + out + " " + extra);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return out;
  }

  testing::CliResult Install(const std::string& rel, const std::string& extra = "") {
    return Run("device install-release " + rel + " --state " + root_ + "/dev --model " + kFixture +
               "/base --trusted " + root_ + "/op.key.pub " + extra);
  }

  uint64_t Current() {
    auto s = ReadReleaseState(root_ + "/dev");
    return s.ok() && s->current ? s->current->version : 0;
  }

  std::string root_;
};

TEST_F(ReleaseHardeningTest, AVersionASignedRollbackRetiredIsNeverReinstalled) {
  const std::string r1 = Release(1), r2 = Release(2), r3 = Release(3);
  ASSERT_EQ(Install(r1).exit_code, 0);
  ASSERT_EQ(Install(r2).exit_code, 0);
  ASSERT_EQ(Run("release rollback --from 2 --to " + r1 + " --key " + root_ + "/op.key --out " +
                root_ + "/rb.json")
                .exit_code,
            0);
  auto back = Install(r1, "--rollback " + root_ + "/rb.json");
  ASSERT_EQ(back.exit_code, 0) << back.err;
  ASSERT_EQ(Current(), 1u);
  auto state = ReadReleaseState(root_ + "/dev");
  ASSERT_TRUE(state.ok());
  EXPECT_THAT(state->retired, ::testing::ElementsAre(2u));
  // The coordinator (or anyone) offers version 2 again: it is newer than 1, correctly signed,
  // for this base, and still refused.
  auto again = Install(r2);
  EXPECT_NE(again.exit_code, 0);
  EXPECT_THAT(again.err, HasSubstr("retired by a signed rollback"));
  EXPECT_EQ(Current(), 1u);
  // A newer version goes in, and version 2 stays retired after it.
  auto newer = Install(r3);
  ASSERT_EQ(newer.exit_code, 0) << newer.err;
  EXPECT_EQ(Current(), 3u);
  EXPECT_THAT(ReadReleaseState(root_ + "/dev")->retired, ::testing::ElementsAre(2u));
}

TEST_F(ReleaseHardeningTest, AReleaseForAnotherSegmentIsRefused) {
  const std::string beta = Release(1, "--segment beta");
  TrustStore trust;
  ASSERT_TRUE(trust.AddFiles({root_ + "/op.key.pub"}).ok());
  auto sha = io::ModelSha256(kFixture + "/base");
  ASSERT_TRUE(sha.ok()) << sha.status();
  auto refused = InstallRelease(root_ + "/dev", beta, trust, *sha, std::nullopt, "global");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("segment \"beta\""));
  EXPECT_EQ(Current(), 0u);
  auto ok = InstallRelease(root_ + "/dev", beta, trust, *sha, std::nullopt, "beta");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(Current(), 1u);
}

}  // namespace
}  // namespace fedlora::device
