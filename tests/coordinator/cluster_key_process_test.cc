// The cluster key of a multi-host folder through the CLI (issue 30, cluster_key.h):
// `coordinator init --store` writes it with mode 0600; a folder made before it (no
// cluster.key) is refused by `coordinator run` and `coordinator aggregator` with the command
// that adds one; `coordinator cluster-key` adds it once and refuses to replace it; no output
// shows the key.
#if FEDLORA_HAVE_POSTGRESQL

#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "fedlora/common/encoding.h"
#include "fedlora/coordinator/cluster_key.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "multihost_testutil.h"

namespace fedlora {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class ClusterKeyProcessTest : public MultiHostProcessTest {
 protected:
  std::string Coord() const { return dir_ + "/coord"; }
  std::string KeyPath() const { return Coord() + "/" + coordinator::kClusterKeyFile; }
  unsigned KeyMode() const {
    struct stat st;
    return ::stat(KeyPath().c_str(), &st) == 0 ? (st.st_mode & 0777) : 0;
  }
  ChildProcess StartAggregator(const std::string& name) {
    return StartFedlora({"coordinator", "aggregator", "--state", Coord(), "--listen", "127.0.0.1:0",
                         "--metrics", ""},
                        dir_ + "/" + name);
  }
};

TEST_F(ClusterKeyProcessTest, AFolderWithoutAKeyIsRefusedUntilClusterKeyAddsOne) {
  SetUpCluster(/*rounds=*/1, /*n=*/1);
  EXPECT_EQ(KeyMode(), 0600u);
  auto made = coordinator::ReadClusterKey(Coord());
  ASSERT_TRUE(made.ok()) << made.status();
  // init --json names it (a second population: its own database and key).
  auto second =
      Run("coordinator init --state " + dir_ + "/coord2 --model " + Model() + " --store " +
          testing::ShellQuote(pg_->ConnInfo(pg_->CreateDatabase())) + " --tokens 1 --json");
  ASSERT_EQ(second.exit_code, 0) << second.out << second.err;
  auto init = nlohmann::json::parse(second.out, nullptr, false);
  ASSERT_FALSE(init.is_discarded()) << second.out;
  EXPECT_EQ(init["cluster_key"], dir_ + "/coord2/" + coordinator::kClusterKeyFile);
  auto second_key = coordinator::ReadClusterKey(dir_ + "/coord2");
  ASSERT_TRUE(second_key.ok()) << second_key.status();
  EXPECT_NE(*second_key, *made);

  // A folder made before leader credentials.
  std::filesystem::remove(KeyPath());
  const std::string hint = "fedlora coordinator cluster-key --state " + Coord();
  auto leader = StartSlot(0, "leader");
  EXPECT_NE(leader.Wait(60), 0);
  EXPECT_THAT(leader.Err(), HasSubstr(hint));
  EXPECT_THAT(leader.Out(), Not(HasSubstr("standby")));  // refused before waiting on the lease
  auto agg = StartAggregator("agg0");
  EXPECT_NE(agg.Wait(60), 0);
  EXPECT_THAT(agg.Err(), HasSubstr(hint));

  auto add = Run("coordinator cluster-key --state " + Coord() + " --json");
  ASSERT_EQ(add.exit_code, 0) << add.out << add.err;
  auto j = nlohmann::json::parse(add.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << add.out;
  EXPECT_EQ(j["cluster_key_file"], KeyPath());
  EXPECT_EQ(KeyMode(), 0600u);
  auto key = coordinator::ReadClusterKey(Coord());
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_NE(*key, *made);
  auto again = Run("coordinator cluster-key --state " + Coord());
  EXPECT_NE(again.exit_code, 0);
  EXPECT_THAT(again.err, HasSubstr("already exists"));
  EXPECT_EQ(*coordinator::ReadClusterKey(Coord()), *key);

  // Now the aggregator starts; nothing printed the key.
  auto agg1 = StartAggregator("agg1");
  ASSERT_NE(agg1.WaitForLine("registered as", 60), "") << agg1.Err();
  agg1.Kill(SIGTERM);
  EXPECT_EQ(agg1.Wait(30), 0) << agg1.Err();
  const std::string out = second.out + second.err + add.out + add.err + again.out + again.err +
                          agg1.Out() + agg1.Err() + leader.Out() + leader.Err() + agg.Out() +
                          agg.Err();
  for (const std::string& k : {*made, *key, *second_key}) {
    EXPECT_THAT(out, Not(HasSubstr(HexEncode(k))));
    EXPECT_THAT(out, Not(HasSubstr(k)));
  }
}

// `coordinator cluster-key` only adds keys to multi-host folders.
TEST_F(ClusterKeyProcessTest, ClusterKeyRefusesASingleHostFolderAndANonFolder) {
  auto none = Run("coordinator cluster-key --state " + Coord());
  EXPECT_NE(none.exit_code, 0);
  EXPECT_THAT(none.err, HasSubstr("is not a coordinator state folder"));
  std::filesystem::create_directories(Coord());
  std::ofstream(Coord() + "/coordinator.json") << "{}\n";  // no `store` file: SQLite
  auto single = Run("coordinator cluster-key --state " + Coord());
  EXPECT_NE(single.exit_code, 0);
  EXPECT_THAT(single.err, HasSubstr("single-host"));
  EXPECT_FALSE(std::filesystem::exists(KeyPath()));
}

// A mistyped --state (no coordinator.json) is "not a coordinator state folder" for every
// multi-host command, not taken for an empty single-host folder.
TEST_F(ClusterKeyProcessTest, EveryMultiHostCommandSaysANonFolderIsNoStateFolder) {
  std::filesystem::create_directories(Coord());
  for (const char* cmd : {"coordinator edge --insecure --listen 127.0.0.1:0 --metrics ''",
                          "coordinator aggregator --insecure --listen 127.0.0.1:0 --metrics ''",
                          "coordinator run --insecure --listen 127.0.0.1:0 --metrics ''"}) {
    auto r = Run(std::string(cmd) + " --state " + Coord());
    EXPECT_NE(r.exit_code, 0) << cmd;
    EXPECT_THAT(r.err, HasSubstr("is not a coordinator state folder")) << cmd;
    EXPECT_THAT(r.err, HasSubstr("coordinator init --state " + Coord())) << cmd;
  }
}

}  // namespace
}  // namespace fedlora

#endif  // FEDLORA_HAVE_POSTGRESQL
