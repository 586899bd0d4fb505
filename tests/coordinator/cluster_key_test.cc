// The cluster key and the leader's MAC on RunShard (cluster_key.h): the key file is fresh
// CSPRNG hex, mode 0600, never replaced; a folder without one is refused with the command that
// adds one; the MAC covers every field of the request under a domain-separation label and is
// checked against absent, other-key and other-request MACs.
#include "fedlora/coordinator/cluster_key.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "fedlora/common/encoding.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/private_file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedlora::coordinator {
namespace {

using ::testing::HasSubstr;

class ClusterKeyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/cluster_key_" + std::to_string(::getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ + "/a");
    std::filesystem::create_directories(dir_ + "/b");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static v1::RunShardRequest Request() {
    v1::RunShardRequest r;
    r.set_population("global");
    r.set_epoch(7);
    r.set_round(12);
    r.set_shard(1);
    r.mutable_session()->set_num_devices(3);
    r.mutable_session()->set_threshold(2);
    r.mutable_session()->set_min_sum_devices(2);
    r.mutable_session()->set_dim(4);
    r.mutable_session()->set_bits(8);
    r.mutable_session()->set_round_nonce(std::string(32, 'n'));
    for (const char* d : {"dev-a", "dev-b", "dev-c"}) r.add_devices(d);
    r.set_advertise_deadline_ms(30000);
    r.set_phase_deadline_ms(3000);
    return r;
  }

  std::string Key(const std::string& sub) {
    auto key = ReadClusterKey(dir_ + "/" + sub);
    EXPECT_TRUE(key.ok()) << key.status();
    return key.value_or("");
  }

  std::string dir_;
};

TEST_F(ClusterKeyTest, CreateWritesFreshRandomHexWithMode0600) {
  ASSERT_TRUE(CreateClusterKey(dir_ + "/a").ok());
  ASSERT_TRUE(CreateClusterKey(dir_ + "/b").ok());
  const std::string path = dir_ + "/a/" + kClusterKeyFile;
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto text = ReadFileToString(path);
  ASSERT_TRUE(text.ok());
  ASSERT_EQ(text->size(), 2 * kClusterKeyBytes + 1);  // hex and a newline
  const std::string a = Key("a");
  EXPECT_EQ(a.size(), kClusterKeyBytes);
  EXPECT_EQ(HexEncode(a) + "\n", *text);
  EXPECT_NE(a, Key("b"));
  EXPECT_NE(a, std::string(kClusterKeyBytes, '\0'));
}

TEST_F(ClusterKeyTest, ASecondCreateIsRefusedAndTheKeyStays) {
  ASSERT_TRUE(CreateClusterKey(dir_ + "/a").ok());
  const std::string before = Key("a");
  absl::Status again = CreateClusterKey(dir_ + "/a");
  EXPECT_EQ(again.code(), absl::StatusCode::kAlreadyExists) << again;
  EXPECT_THAT(again.message(), HasSubstr("lock out"));
  EXPECT_EQ(Key("a"), before);
}

TEST_F(ClusterKeyTest, AFolderWithoutAKeyIsRefusedWithTheCommandThatAddsOne) {
  auto key = ReadClusterKey(dir_ + "/a");
  EXPECT_EQ(key.status().code(), absl::StatusCode::kFailedPrecondition) << key.status();
  EXPECT_THAT(key.status().message(),
              HasSubstr("fedlora coordinator cluster-key --state " + dir_ + "/a"));
}

TEST_F(ClusterKeyTest, AKeyOthersCanReadOrAMalformedOneIsRefused) {
  ASSERT_TRUE(CreateClusterKey(dir_ + "/a").ok());
  const std::string path = dir_ + "/a/" + kClusterKeyFile;
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  EXPECT_EQ(ReadClusterKey(dir_ + "/a").status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(WriteFileWithMode(path, "abcd\n", 0600, ExistingFile::kReplace).ok());
  EXPECT_EQ(ReadClusterKey(dir_ + "/a").status().code(), absl::StatusCode::kDataLoss);
  ASSERT_TRUE(
      WriteFileWithMode(path, std::string(64, 'z') + "\n", 0600, ExistingFile::kReplace).ok());
  EXPECT_EQ(ReadClusterKey(dir_ + "/a").status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(ClusterKeyTest, TheLeadersMacVerifies) {
  ASSERT_TRUE(CreateClusterKey(dir_ + "/a").ok());
  const std::string key = Key("a");
  auto mac = RunShardMac(key, Request());
  ASSERT_TRUE(mac.ok()) << mac.status();
  EXPECT_EQ(mac->size(), 32u);
  EXPECT_EQ(*RunShardMac(key, Request()), *mac);  // deterministic
  EXPECT_TRUE(CheckRunShardMac(key, Request(), *mac).ok());
  // Under the domain-separation label: not the bare HMAC of the serialization.
  const std::string bare = Request().SerializeAsString();
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  ASSERT_NE(HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
                 reinterpret_cast<const unsigned char*>(bare.data()), bare.size(), out, &len),
            nullptr);
  EXPECT_NE(std::string(reinterpret_cast<const char*>(out), len), *mac);
}

TEST_F(ClusterKeyTest, NoMacOrAnotherFoldersKeyIsUnauthenticated) {
  ASSERT_TRUE(CreateClusterKey(dir_ + "/a").ok());
  ASSERT_TRUE(CreateClusterKey(dir_ + "/b").ok());
  const std::string key = Key("a");
  absl::Status none = CheckRunShardMac(key, Request(), std::nullopt);
  EXPECT_EQ(none.code(), absl::StatusCode::kUnauthenticated) << none;
  EXPECT_THAT(none.message(), HasSubstr("no leader credential"));
  absl::Status other = CheckRunShardMac(key, Request(), *RunShardMac(Key("b"), Request()));
  EXPECT_EQ(other.code(), absl::StatusCode::kUnauthenticated) << other;
  EXPECT_THAT(other.message(), HasSubstr("copy the leader's folder's cluster.key"));
  for (const std::string& junk : {std::string(), std::string(32, '\0'), std::string(31, 'x')}) {
    EXPECT_EQ(CheckRunShardMac(key, Request(), junk).code(), absl::StatusCode::kUnauthenticated);
  }
}

// A MAC made for one request never verifies another that differs in any field.
TEST_F(ClusterKeyTest, TheMacCoversEveryFieldOfTheRequest) {
  ASSERT_TRUE(CreateClusterKey(dir_ + "/a").ok());
  const std::string key = Key("a");
  const std::string mac = *RunShardMac(key, Request());
  const std::vector<std::pair<const char*, std::function<void(v1::RunShardRequest&)>>> changes = {
      {"population", [](auto& r) { r.set_population("other"); }},
      {"epoch", [](auto& r) { r.set_epoch(8); }},
      {"round", [](auto& r) { r.set_round(13); }},
      {"shard", [](auto& r) { r.set_shard(2); }},
      {"threshold", [](auto& r) { r.mutable_session()->set_threshold(1); }},
      {"min_sum_devices", [](auto& r) { r.mutable_session()->set_min_sum_devices(1); }},
      {"round_nonce", [](auto& r) { r.mutable_session()->set_round_nonce(std::string(32, 'm')); }},
      {"a device swapped", [](auto& r) { r.set_devices(1, "dev-x"); }},
      {"device order", [](auto& r) { r.mutable_devices()->SwapElements(0, 2); }},
      {"a device added", [](auto& r) { r.add_devices("dev-d"); }},
      {"advertise deadline", [](auto& r) { r.set_advertise_deadline_ms(30001); }},
      {"phase deadline", [](auto& r) { r.set_phase_deadline_ms(600000); }},
  };
  for (const auto& [what, change] : changes) {
    v1::RunShardRequest r = Request();
    change(r);
    absl::Status s = CheckRunShardMac(key, r, mac);
    EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated) << what;
    EXPECT_NE(*RunShardMac(key, r), mac) << what;
  }
}

}  // namespace
}  // namespace fedlora::coordinator
