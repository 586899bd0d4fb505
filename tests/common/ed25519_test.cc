#include "fedlora/common/ed25519.h"

#include <sys/stat.h>

#include <filesystem>
#include <string>

#include "fedlora/common/file_util.h"
#include "fedlora/common/private_file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora {
namespace {

using ::testing::HasSubstr;

class Ed25519Test : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("fedlora_ed25519_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }
  std::filesystem::path dir_;
};

TEST_F(Ed25519Test, SignVerifyRoundTrip) {
  auto key = Ed25519Key::Generate();
  ASSERT_TRUE(key.ok()) << key.status();
  const std::string pub = key->PublicRaw();
  EXPECT_EQ(pub.size(), kEd25519PublicKeyBytes);
  auto sig = key->Sign("hello coordinator");
  ASSERT_TRUE(sig.ok()) << sig.status();
  EXPECT_EQ(sig->size(), kEd25519SignatureBytes);
  EXPECT_TRUE(VerifyEd25519(pub, "hello coordinator", *sig).ok());
  // Ed25519 is deterministic: the same key and message give the same signature.
  EXPECT_EQ(*key->Sign("hello coordinator"), *sig);
  EXPECT_NE(*key->Sign("hello coordinator!"), *sig);
}

TEST_F(Ed25519Test, TamperedMessageOrSignatureFails) {
  auto key = Ed25519Key::Generate();
  ASSERT_TRUE(key.ok());
  std::string msg = "round 3 update";
  std::string sig = *key->Sign(msg);
  std::string bad_msg = msg;
  bad_msg[0] ^= 1;
  absl::Status s = VerifyEd25519(key->PublicRaw(), bad_msg, sig);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(s.message(), HasSubstr("signature does not verify"));
  for (size_t i : {size_t{0}, size_t{31}, size_t{32}, size_t{63}}) {
    std::string bad_sig = sig;
    bad_sig[i] ^= 0x40;
    EXPECT_EQ(VerifyEd25519(key->PublicRaw(), msg, bad_sig).code(),
              absl::StatusCode::kUnauthenticated)
        << "byte " << i;
  }
  EXPECT_EQ(VerifyEd25519(key->PublicRaw(), msg + "x", sig).code(),
            absl::StatusCode::kUnauthenticated);
  // The failure leaves no stale OpenSSL error: the next verification succeeds.
  EXPECT_TRUE(VerifyEd25519(key->PublicRaw(), msg, sig).ok());
}

TEST_F(Ed25519Test, WrongKeyFails) {
  auto a = Ed25519Key::Generate();
  auto b = Ed25519Key::Generate();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->PublicRaw(), b->PublicRaw());
  std::string sig = *a->Sign("m");
  EXPECT_EQ(VerifyEd25519(b->PublicRaw(), "m", sig).code(), absl::StatusCode::kUnauthenticated);
}

TEST_F(Ed25519Test, WrongSizesAreInvalidArgument) {
  auto key = Ed25519Key::Generate();
  ASSERT_TRUE(key.ok());
  std::string sig = *key->Sign("m");
  EXPECT_EQ(VerifyEd25519(key->PublicRaw().substr(1), "m", sig).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(VerifyEd25519(key->PublicRaw(), "m", sig.substr(1)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(VerifyEd25519(key->PublicRaw(), "m", sig + "x").code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(Ed25519Test, SaveLoadRoundTripWithMode0600) {
  auto key = Ed25519Key::Generate();
  ASSERT_TRUE(key.ok());
  const std::string path = Path("device.key");
  ASSERT_TRUE(key->SavePrivate(path).ok());
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto pem = ReadFileToString(path);
  ASSERT_TRUE(pem.ok());
  EXPECT_THAT(*pem, HasSubstr("-----BEGIN PRIVATE KEY-----"));
  auto loaded = Ed25519Key::LoadPrivate(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->PublicRaw(), key->PublicRaw());
  std::string sig = *loaded->Sign("after reload");
  EXPECT_TRUE(VerifyEd25519(key->PublicRaw(), "after reload", sig).ok());
  // No temporary files are left behind.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_),
                          std::filesystem::directory_iterator()),
            1);
  // Saving again replaces the file (still 0600).
  auto other = Ed25519Key::Generate();
  ASSERT_TRUE(other->SavePrivate(path).ok());
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(Ed25519Key::LoadPrivate(path)->PublicRaw(), other->PublicRaw());
}

TEST_F(Ed25519Test, SaveIsNot0644EvenWithPermissiveUmask) {
  mode_t old = ::umask(0);
  auto key = Ed25519Key::Generate();
  const std::string path = Path("k.pem");
  absl::Status s = key->SavePrivate(path);
  ::umask(old);
  ASSERT_TRUE(s.ok()) << s;
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(Ed25519Test, LoadRefusesGroupOrWorldReadableFile) {
  auto key = Ed25519Key::Generate();
  const std::string path = Path("device.key");
  ASSERT_TRUE(key->SavePrivate(path).ok());
  for (mode_t mode : {0644, 0640, 0604, 0660}) {
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
    auto loaded = Ed25519Key::LoadPrivate(path);
    EXPECT_EQ(loaded.status().code(), absl::StatusCode::kFailedPrecondition) << mode;
    EXPECT_THAT(loaded.status().message(), HasSubstr("chmod 600 " + path));
  }
  ASSERT_EQ(::chmod(path.c_str(), 0400), 0);
  EXPECT_TRUE(Ed25519Key::LoadPrivate(path).ok());
}

TEST_F(Ed25519Test, MissingGarbageAndWrongAlgorithmFiles) {
  auto missing = Ed25519Key::LoadPrivate(Path("nope.key"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("nope.key"));

  const std::string garbage = Path("garbage.key");
  ASSERT_TRUE(WriteFileWithMode(garbage, "this is not a key\n", 0600, ExistingFile::kRefuse).ok());
  auto g = Ed25519Key::LoadPrivate(garbage);
  EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(g.status().message(), HasSubstr("not an unencrypted PEM PKCS#8 private key"));
  EXPECT_THAT(g.status().message(), HasSubstr("OpenSSL:"));

  // A valid PKCS#8 key of another algorithm (`openssl genpkey -algorithm EC ... P-256`).
  const std::string ec_pem =
      "-----BEGIN PRIVATE KEY-----\n"
      "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgN6WFHa3rq+AQ4GZc\n"
      "3XtNXpXHNE/O9wnylkgDGA8h5d2hRANCAATzaZNKzNOzBXC44BglpNwbWNISQ4d9\n"
      "pJi0P5ozQLINCoyndC+ykY0lA1tjuPs0YzwQc/vaogXcBfiVxlX5Ge+P\n"
      "-----END PRIVATE KEY-----\n";
  const std::string ec = Path("ec.key");
  ASSERT_TRUE(WriteFileWithMode(ec, ec_pem, 0600, ExistingFile::kRefuse).ok());
  auto e = Ed25519Key::LoadPrivate(ec);
  EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument) << e.status();
  EXPECT_THAT(e.status().message(), HasSubstr("not an Ed25519 key"));

  EXPECT_EQ(Ed25519Key::LoadPrivate(dir_.string()).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(Ed25519Test, WriteFileWithModeRefusesToOverwrite) {
  const std::string path = Path("f");
  ASSERT_TRUE(WriteFileWithMode(path, "one", 0600, ExistingFile::kRefuse).ok());
  absl::Status s = WriteFileWithMode(path, "two", 0600, ExistingFile::kRefuse);
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(*ReadFileToString(path), "one");
}

TEST_F(Ed25519Test, KeyIsMovable) {
  auto key = Ed25519Key::Generate();
  ASSERT_TRUE(key.ok());
  std::string pub = key->PublicRaw();
  Ed25519Key moved = std::move(*key);
  EXPECT_EQ(moved.PublicRaw(), pub);
  auto other = Ed25519Key::Generate();
  moved = std::move(*other);
  EXPECT_NE(moved.PublicRaw(), pub);
}

}  // namespace
}  // namespace fedlora
