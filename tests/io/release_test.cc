// Signed releases: a release verifies only when everything a device checks holds, and each
// hostile case is refused with its own status and a message naming what is wrong.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "fedlora/common/encoding.h"
#include "fedlora/common/file_util.h"
#include "fedlora/io/release_folder.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora::io {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

const std::string kBase(64, 'a');
const std::string kOtherBase(64, 'b');

class ReleaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = ::testing::TempDir() + "/release_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(root_);
    fs::create_directories(root_ + "/adapter");
    std::ofstream(root_ + "/adapter/adapter_config.json") << R"({"r": 4, "lora_alpha": 8})";
    std::ofstream(root_ + "/adapter/adapter_model.safetensors") << std::string(1000, '\x42');
    key_ = std::make_unique<Ed25519Key>(*Ed25519Key::Generate());
    trust_.Add(key_->PublicRaw());
  }

  std::string Make(uint64_t version, const std::string& name) {
    CreateReleaseOptions o;
    o.adapter_dir = root_ + "/adapter";
    o.base_model_sha256 = kBase;
    o.version = version;
    o.provenance.rounds = 10;
    o.provenance.epsilon = 3.5;
    o.provenance.delta = 1e-5;
    o.out_dir = root_ + "/" + name;
    auto m = CreateRelease(o, *key_);
    EXPECT_TRUE(m.ok()) << m.status();
    return o.out_dir;
  }

  VerifyReleaseOptions Opts(uint64_t installed = 0) {
    VerifyReleaseOptions v;
    v.base_model_sha256 = kBase;
    v.installed_version = installed;
    return v;
  }

  void EditManifest(const std::string& dir, const std::function<void(nlohmann::json&)>& f) {
    auto j = nlohmann::json::parse(*ReadFileToString(dir + "/manifest.json"));
    f(j);
    ASSERT_TRUE(WriteFileAtomic(dir + "/manifest.json", j.dump(2)).ok());
  }

  std::string root_;
  std::unique_ptr<Ed25519Key> key_;
  TrustStore trust_;
};

TEST_F(ReleaseTest, AnIntactReleaseVerifiesAndRecordsItsProvenance) {
  const std::string dir = Make(3, "rel");
  auto m = VerifyRelease(dir, trust_, Opts(2));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->version, 3u);
  EXPECT_EQ(m->provenance.rounds, 10);
  EXPECT_DOUBLE_EQ(m->provenance.epsilon, 3.5);
  EXPECT_EQ(m->key_id, KeyId(key_->PublicRaw()));
  ASSERT_EQ(m->files.size(), 2u);
  // The canonical bytes are the documented text (another implementation can rebuild them).
  const std::string canon = ReleaseCanonicalBytes(*m);
  EXPECT_EQ(canon.rfind("fedlora-release-1\nrelease_id ", 0), 0u) << canon;
  EXPECT_THAT(canon, HasSubstr("\nversion 3\n"));
  EXPECT_THAT(canon, HasSubstr("\nprovenance 10 3.5 1.0000000000000001e-05 "));
  EXPECT_THAT(canon, HasSubstr(absl::StrCat("\nfile ", m->files[0].sha256, " ")));
  EXPECT_TRUE(VerifyEd25519(key_->PublicRaw(), canon, m->signature).ok());
}

TEST_F(ReleaseTest, BothEpsilonsAreSignedAndAnOlderManifestKeepsItsBytes) {
  // Without the coordinator's epsilon the canonical bytes are exactly the older format's.
  const std::string old_dir = Make(1, "old");
  auto old = VerifyRelease(old_dir, trust_, Opts());
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_FALSE(old->provenance.epsilon_coordinator.has_value());
  EXPECT_THAT(ReleaseCanonicalBytes(*old), Not(HasSubstr("provenance_coordinator")));
  EXPECT_FALSE(ManifestToJson(*old)["provenance"].contains("epsilon_coordinator"));

  for (double ec : {12.25, std::numeric_limits<double>::infinity()}) {
    CreateReleaseOptions o;
    o.adapter_dir = root_ + "/adapter";
    o.base_model_sha256 = kBase;
    o.version = 2;
    o.provenance = {10, 3.5, 1e-5, "", ec};
    o.out_dir = root_ + (std::isfinite(ec) ? "/finite" : "/unbounded");
    ASSERT_TRUE(CreateRelease(o, *key_).ok());
    auto m = VerifyRelease(o.out_dir, trust_, Opts());
    ASSERT_TRUE(m.ok()) << m.status();
    ASSERT_TRUE(m->provenance.epsilon_coordinator.has_value());
    EXPECT_EQ(*m->provenance.epsilon_coordinator, ec);
    EXPECT_THAT(ReleaseCanonicalBytes(*m),
                HasSubstr(std::isfinite(ec) ? "\nprovenance_coordinator 12.25\n"
                                            : "\nprovenance_coordinator unbounded\n"));
    // The signature covers it: a smaller figure written into the manifest is refused.
    EditManifest(o.out_dir,
                 [](nlohmann::json& j) { j["provenance"]["epsilon_coordinator"] = 1.0; });
    EXPECT_EQ(VerifyRelease(o.out_dir, trust_, Opts()).status().code(),
              absl::StatusCode::kUnauthenticated);
    EditManifest(o.out_dir,
                 [](nlohmann::json& j) { j["provenance"]["epsilon_coordinator"] = "low"; });
    EXPECT_EQ(VerifyRelease(o.out_dir, trust_, Opts()).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
}

TEST_F(ReleaseTest, AFlippedByteInAnyFileIsRefused) {
  const std::string dir = Make(1, "rel");
  for (const char* file : {"adapter/adapter_model.safetensors", "adapter/adapter_config.json",
                           "manifest.json"}) {
    const std::string path = dir + "/" + file;
    std::string bytes = *ReadFileToString(path);
    const size_t at = std::string(file) == "manifest.json" ? bytes.find("\"version\": 1") + 11
                                                            : bytes.size() / 2;
    bytes[at] ^= 0x01;
    ASSERT_TRUE(WriteFileAtomic(path, bytes).ok());
    auto m = VerifyRelease(dir, trust_, Opts());
    EXPECT_FALSE(m.ok()) << file;
    bytes[at] ^= 0x01;
    ASSERT_TRUE(WriteFileAtomic(path, bytes).ok());
    EXPECT_TRUE(VerifyRelease(dir, trust_, Opts()).ok()) << file;
  }
  // A changed byte in a file is DATA_LOSS naming the file.
  std::string bytes = *ReadFileToString(dir + "/adapter/adapter_model.safetensors");
  bytes[10] ^= 0x80;
  ASSERT_TRUE(WriteFileAtomic(dir + "/adapter/adapter_model.safetensors", bytes).ok());
  auto m = VerifyRelease(dir, trust_, Opts());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(m.status().message(), HasSubstr("adapter/adapter_model.safetensors"));
}

TEST_F(ReleaseTest, ATruncatedFileIsRefusedAsDataLoss) {
  const std::string dir = Make(1, "rel");
  const std::string path = dir + "/adapter/adapter_model.safetensors";
  fs::resize_file(path, 500);
  auto m = VerifyRelease(dir, trust_, Opts());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(m.status().message(), HasSubstr("truncated"));
}

TEST_F(ReleaseTest, UnknownAndRevokedKeysAreRefused) {
  const std::string dir = Make(1, "rel");
  TrustStore other;
  other.Add(Ed25519Key::Generate()->PublicRaw());
  auto unknown = VerifyRelease(dir, other, Opts());
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(unknown.status().message(), HasSubstr("unknown key"));
  // Rotation: the old key and a new one both trusted.
  other.Add(key_->PublicRaw());
  EXPECT_TRUE(VerifyRelease(dir, other, Opts()).ok());
  other.Revoke(KeyId(key_->PublicRaw()));
  auto revoked = VerifyRelease(dir, other, Opts());
  EXPECT_EQ(revoked.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(revoked.status().message(), HasSubstr("revoked"));
}

TEST_F(ReleaseTest, AValidSignatureOverAnotherBaseIsRefused) {
  const std::string dir = Make(1, "rel");
  VerifyReleaseOptions o = Opts();
  o.base_model_sha256 = kOtherBase;
  auto m = VerifyRelease(dir, trust_, o);
  EXPECT_EQ(m.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(m.status().message(), HasSubstr("made for base model"));
  // Editing the base hash in the manifest breaks the signature instead.
  EditManifest(dir, [](nlohmann::json& j) { j["base_model_sha256"] = kOtherBase; });
  o.base_model_sha256 = kOtherBase;
  EXPECT_EQ(VerifyRelease(dir, trust_, o).status().code(), absl::StatusCode::kUnauthenticated);
}

TEST_F(ReleaseTest, AnOlderVersionNeedsASignedRollbackForExactlyThatStep) {
  const std::string v2 = Make(2, "rel2");
  auto refused = VerifyRelease(v2, trust_, Opts(5));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("rollback"));
  auto m = ReadManifest(v2);
  ASSERT_TRUE(m.ok());
  RollbackInstruction r{5, 2, m->release_id, kBase, "2026-11-29T00:00:00Z", "", ""};
  ASSERT_TRUE(SignRollback(*key_, &r).ok());
  VerifyReleaseOptions o = Opts(5);
  o.rollback = r;
  EXPECT_TRUE(VerifyRelease(v2, trust_, o).ok());
  // The same instruction does not cover another installed version.
  o.installed_version = 6;
  EXPECT_EQ(VerifyRelease(v2, trust_, o).status().code(), absl::StatusCode::kFailedPrecondition);
  // A rollback signed by an unknown key, or altered after signing, is refused.
  RollbackInstruction forged = r;
  forged.from_version = 6;
  o.rollback = forged;
  EXPECT_EQ(VerifyRelease(v2, trust_, o).status().code(), absl::StatusCode::kUnauthenticated);
  auto stranger = Ed25519Key::Generate();
  RollbackInstruction foreign = r;
  ASSERT_TRUE(SignRollback(*stranger, &foreign).ok());
  o.installed_version = 5;
  o.rollback = foreign;
  EXPECT_EQ(VerifyRelease(v2, trust_, o).status().code(), absl::StatusCode::kUnauthenticated);
  // The JSON form round-trips.
  auto back = RollbackFromJson(RollbackToJson(r));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(RollbackCanonicalBytes(*back), RollbackCanonicalBytes(r));
}

TEST_F(ReleaseTest, AManifestNamingAPathOutsideTheFolderIsRefused) {
  const std::string dir = Make(1, "rel");
  for (const char* path : {"../escape", "/etc/passwd", "adapter/../../x", "a//b", "manifest.json"}) {
    EditManifest(dir, [&](nlohmann::json& j) { j["files"][0]["path"] = path; });
    auto m = VerifyRelease(dir, trust_, Opts());
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << path;
    EXPECT_THAT(m.status().message(), HasSubstr("inside its release folder")) << path;
  }
  EXPECT_TRUE(CheckReleasePath("adapter/adapter_model.safetensors").ok());
}

TEST_F(ReleaseTest, CreateRefusesAMissingAdapterAndLeavesNothing) {
  CreateReleaseOptions o;
  o.adapter_dir = root_ + "/nothing-here";
  o.base_model_sha256 = kBase;
  o.version = 1;
  o.out_dir = root_ + "/out";
  auto m = CreateRelease(o, *key_);
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(m.status().message(), HasSubstr("adapter_config.json"));
  EXPECT_FALSE(fs::exists(o.out_dir));
}

TEST_F(ReleaseTest, PublicKeyFilesRoundTripAndRejectEdits) {
  const std::string path = root_ + "/k.pub";
  ASSERT_TRUE(WriteFileAtomic(path, PublicKeyFileText(key_->PublicRaw())).ok());
  auto raw = ReadPublicKeyFile(path);
  ASSERT_TRUE(raw.ok()) << raw.status();
  EXPECT_EQ(*raw, key_->PublicRaw());
  std::string text = *ReadFileToString(path);
  text[10] = text[10] == 'a' ? 'b' : 'a';  // a changed key no longer matches its id
  ASSERT_TRUE(WriteFileAtomic(path, text).ok());
  EXPECT_FALSE(ReadPublicKeyFile(path).ok());
}

}  // namespace
}  // namespace fedlora::io
