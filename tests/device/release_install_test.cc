// Releases on a device, through the CLI an operator and a device run: keys, create, verify,
// install (atomic, previous kept), downgrade only with a signed rollback, a full disk leaving
// everything as it was, and the health gate falling back to the previous release.
#include <filesystem>
#include <cstdlib>
#include <fstream>

#include "fedlora/adapters/gguf.h"
#include "fedlora/adapters/lora_adapter.h"
#include "fedlora/device/runtime.h"
#include "fedlora/common/file_util.h"
#include "fedlora/device/release_install.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testutil/cli_runner.h"

namespace fedlora::device {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::ShellQuote;

const std::string kFixture = std::string(FEDLORA_SHARED_DIR) + "/fixtures/hf-tiny-llama";

class ReleaseInstallTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kFixture + "/base")) GTEST_SKIP() << "no ../shared fixture";
    root_ = ::testing::TempDir() + "/relinst_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(root_);
    fs::create_directories(root_);
    ASSERT_EQ(Run("keys new --out " + root_ + "/op.key").exit_code, 0);
  }

  testing::CliResult Run(const std::string& args) {
    return testing::RunFedlora(args, root_);
  }

  // A release of `adapter_dir` as `version` into root_/<name>.
  std::string Release(const std::string& adapter_dir, int version, const std::string& name) {
    const std::string out = root_ + "/" + name;
    auto r = Run("release create --adapter " + adapter_dir + " --base " + kFixture +
                 "/base --version " + std::to_string(version) + " --key " + root_ +
                 "/op.key --rounds 3 --epsilon 2.5 --delta 1e-5 --out " + out);
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

TEST_F(ReleaseInstallTest, InstallKeepsThePreviousAndRefusesADowngradeWithoutRollback) {
  const std::string r1 = Release(kFixture + "/adapter", 1, "r1");
  const std::string r2 = Release(kFixture + "/adapter", 2, "r2");
  auto verify = Run("release verify " + r2 + " --trusted " + root_ + "/op.key.pub --base " +
                    kFixture + "/base --json");
  ASSERT_EQ(verify.exit_code, 0) << verify.err;
  EXPECT_THAT(verify.out, HasSubstr("\"ok\":true"));

  ASSERT_EQ(Install(r1).exit_code, 0);
  auto second = Install(r2);
  ASSERT_EQ(second.exit_code, 0) << second.err;
  auto state = ReadReleaseState(root_ + "/dev");
  ASSERT_TRUE(state.ok());
  ASSERT_TRUE(state->current && state->previous);
  EXPECT_EQ(state->current->version, 2u);
  EXPECT_EQ(state->previous->version, 1u);
  EXPECT_TRUE(fs::exists(state->current->dir + "/adapter/adapter_model.safetensors"));
  EXPECT_TRUE(fs::exists(state->previous->dir + "/manifest.json"));

  auto down = Install(r1);
  EXPECT_EQ(down.exit_code, 1);
  EXPECT_THAT(down.err, HasSubstr("signed rollback"));
  EXPECT_EQ(Current(), 2u);

  auto signed_rb = Run("release rollback --from 2 --to " + r1 + " --key " + root_ +
                       "/op.key --out " + root_ + "/rb.json");
  ASSERT_EQ(signed_rb.exit_code, 0) << signed_rb.err;
  auto back = Install(r1, "--rollback " + root_ + "/rb.json");
  ASSERT_EQ(back.exit_code, 0) << back.err;
  EXPECT_EQ(Current(), 1u);
}

TEST_F(ReleaseInstallTest, AnUntrustedOrAlteredReleaseAppliesNothing) {
  const std::string r1 = Release(kFixture + "/adapter", 1, "r1");
  const std::string r2 = Release(kFixture + "/adapter", 2, "r2");
  ASSERT_EQ(Install(r1).exit_code, 0);
  const std::string before = *ReadFileToString(root_ + "/dev/release.json");
  // Signed by another operator's key.
  ASSERT_EQ(Run("keys new --out " + root_ + "/other.key").exit_code, 0);
  auto resign = Run("release sign " + r2 + " --key " + root_ + "/other.key");
  ASSERT_EQ(resign.exit_code, 0) << resign.err;
  auto untrusted = Install(r2);
  EXPECT_EQ(untrusted.exit_code, 1);
  EXPECT_THAT(untrusted.err, HasSubstr("unknown key"));
  // Trusted, then revoked.
  auto rotated = Install(r2, "--trusted " + root_ + "/other.key.pub --revoked " +
                                 [&] {
                                   auto pub = *ReadFileToString(root_ + "/other.key.pub");
                                   return pub.substr(pub.rfind(' ') + 1, 16);
                                 }());
  EXPECT_EQ(rotated.exit_code, 1);
  EXPECT_THAT(rotated.err, HasSubstr("revoked"));
  // A flipped byte.
  const std::string st = r2 + "/adapter/adapter_model.safetensors";
  std::string bytes = *ReadFileToString(st);
  bytes[bytes.size() - 3] ^= 0x10;
  ASSERT_TRUE(WriteFileAtomic(st, bytes).ok());
  auto altered = Install(r2, "--trusted " + root_ + "/other.key.pub");
  EXPECT_EQ(altered.exit_code, 1);
  EXPECT_THAT(altered.err, HasSubstr("SHA-256"));
  EXPECT_EQ(*ReadFileToString(root_ + "/dev/release.json"), before);
  EXPECT_EQ(Current(), 1u);
}

TEST_F(ReleaseInstallTest, AFullDiskMidApplyLeavesTheInstalledReleaseIntact) {
  const std::string r1 = Release(kFixture + "/adapter", 1, "r1");
  const std::string r2 = Release(kFixture + "/adapter", 2, "r2");
  ASSERT_EQ(Install(r1).exit_code, 0);
  const std::string before = *ReadFileToString(root_ + "/dev/release.json");
  // Files larger than 4 KiB cannot be written (EFBIG, as on a full disk); the adapter is larger.
  const std::string cmd =
      "trap '' XFSZ; ulimit -f 4; " + ShellQuote(FEDLORA_BINARY) + " device install-release " +
      r2 + " --state " + root_ + "/dev --model " + kFixture + "/base --trusted " + root_ +
      "/op.key.pub > " + root_ + "/full.out 2> " + root_ + "/full.err";
  const int rc = std::system(("sh -c " + ShellQuote(cmd)).c_str());
  EXPECT_NE(rc, 0);
  EXPECT_THAT(*ReadFileToString(root_ + "/full.err"), HasSubstr("fedlora: error:"));
  EXPECT_EQ(*ReadFileToString(root_ + "/dev/release.json"), before);
  EXPECT_EQ(Current(), 1u);
  for (const auto& e : fs::directory_iterator(root_ + "/dev/releases")) {
    EXPECT_THAT(e.path().filename().string(), ::testing::Not(HasSubstr("staging")));
  }
}

TEST_F(ReleaseInstallTest, TheHealthGateFallsBackFromAReleaseThatHurtsTheUser) {
  std::ofstream(root_ + "/holdout.txt")
      << "the quick brown fox jumps over the lazy dog\nthe rain in spain stays mainly in the plain\n"
         "to be or not to be that is the question\nall that glitters is not gold\n";
  // The release the device runs fits the user's text (trained on it); the new one does not
  // (the fixture's adapter, unrelated to that text).
  auto trained = Run("train --model " + kFixture + "/base --data " + root_ +
                     "/holdout.txt --out " + root_ + "/fitted --steps 40 --lr 0.02");
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  const std::string r1 = Release(root_ + "/fitted", 1, "r1");
  const std::string r2 = Release(kFixture + "/adapter", 2, "r2");
  ASSERT_EQ(Install(r1).exit_code, 0);
  auto gated = Install(r2, "--holdout " + root_ + "/holdout.txt --margin 0 --json");
  ASSERT_EQ(gated.exit_code, 0) << gated.err;
  auto j = nlohmann::json::parse(gated.out);
  EXPECT_EQ(j["health"], "fell back") << gated.out;
  EXPECT_GT(j["holdout_nll_after"].get<double>(), j["holdout_nll_before"].get<double>() + 0.1);
  EXPECT_EQ(j["running"], 1);
  EXPECT_EQ(Current(), 1u);
  // The rejected version is remembered: offered again, it is refused.
  auto again = Install(r2, "--holdout " + root_ + "/holdout.txt --margin 0");
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.err, HasSubstr("failed this device's health check before"));
  EXPECT_EQ(Current(), 1u);
  // A release as good as the current one passes the gate.
  const std::string r3 = Release(root_ + "/fitted", 3, "r3");
  auto ok = Install(r3, "--holdout " + root_ + "/holdout.txt --margin 0 --json");
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(nlohmann::json::parse(ok.out)["health"], "ok") << ok.out;
  EXPECT_EQ(Current(), 3u);
}

TEST_F(ReleaseInstallTest, AVerifiedReleaseExportsToGgufAndAMergedCheckpoint) {
  const std::string r1 = Release(kFixture + "/adapter", 1, "r1");
  const std::string common = " --base " + kFixture + "/base --trusted " + root_ + "/op.key.pub";
  auto gguf = Run("release export " + r1 + " --format gguf --out " + root_ + "/a.gguf" + common);
  ASSERT_EQ(gguf.exit_code, 0) << gguf.err;
  auto file = adapters::ReadGguf(root_ + "/a.gguf");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_FALSE(file->tensors.empty());
  auto merged = Run("release export " + r1 + " --format hf-merged --out " + root_ + "/merged" +
                    common);
  ASSERT_EQ(merged.exit_code, 0) << merged.err;
  EXPECT_TRUE(LoadRuntime(root_ + "/merged").ok());
  // An altered release is not exported.
  const std::string st = r1 + "/adapter/adapter_model.safetensors";
  std::string bytes = *ReadFileToString(st);
  bytes[bytes.size() - 1] ^= 0x01;
  ASSERT_TRUE(WriteFileAtomic(st, bytes).ok());
  auto refused = Run("release export " + r1 + " --format gguf --out " + root_ + "/b.gguf" + common);
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_FALSE(fs::exists(root_ + "/b.gguf"));
}

}  // namespace
}  // namespace fedlora::device
