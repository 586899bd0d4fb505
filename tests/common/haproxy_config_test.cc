// The HAProxy configuration of multi-host mode (fedlora/common/haproxy_config.h): what it says,
// and that HAProxy 2.6 itself accepts it (`haproxy -c`).
#include "fedlora/common/haproxy_config.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testutil/haproxy_server.h"
#include "testutil/process.h"

namespace fedlora {
namespace {

// Writes `text` to TempDir()/name (TEST_TMPDIR may not exist yet when this runs first) and
// returns the path, "" when it could not be written.
std::string WriteConfig(const std::string& name, const std::string& text) {
  std::error_code ec;
  std::filesystem::create_directories(::testing::TempDir(), ec);
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream out(path);
  out << text;
  out.close();
  return out ? path : "";
}

using ::testing::HasSubstr;

HaproxyConfigSpec TwoCoordinators() {
  HaproxyConfigSpec spec;
  spec.listen_port = 50051;
  spec.backends = {{"coord-0", "127.0.0.1", 41000, 42000}, {"coord-1", "127.0.0.1", 41001, 42001}};
  return spec;
}

TEST(HaproxyConfigTest, TcpPassthroughWithHealthChecksOnTheMetricsPort) {
  const std::string c = HaproxyConfig(TwoCoordinators());
  EXPECT_THAT(c, HasSubstr("mode tcp"));  // TLS ends in the coordinator: no `ssl` anywhere
  EXPECT_THAT(c, ::testing::Not(HasSubstr("ssl")));
  EXPECT_THAT(c, HasSubstr("bind 127.0.0.1:50051"));
  EXPECT_THAT(c, HasSubstr("option httpchk GET /healthz"));
  EXPECT_THAT(c, HasSubstr("inter 500ms fall 2 rise 1 on-marked-down shutdown-sessions"));
  EXPECT_THAT(c, HasSubstr("server coord-0 127.0.0.1:41000 check port 42000\n"));
  EXPECT_THAT(c, HasSubstr("server coord-1 127.0.0.1:41001 check port 42001\n"));
  EXPECT_THAT(c, HasSubstr("balance first\n"));  // only the leader listens
  EXPECT_THAT(c, HasSubstr("option redispatch\n"));
}

// In front of edges: spread over every live one; a refused connection goes to another.
TEST(HaproxyConfigTest, EdgesAreBalancedByLeastConnectionsAndHaproxyAcceptsIt) {
  HaproxyConfigSpec spec = TwoCoordinators();
  spec.balance = "leastconn";
  const std::string c = HaproxyConfig(spec);
  EXPECT_THAT(c, HasSubstr("balance leastconn\n"));
  EXPECT_THAT(c, ::testing::Not(HasSubstr("balance first")));
  const std::string bin = HaproxyBinary();
  ASSERT_EQ(::access(bin.c_str(), X_OK), 0) << bin << " not found";
  const std::string path = WriteConfig("haproxy_config_edges.cfg", c);
  ASSERT_FALSE(path.empty()) << "cannot write in " << ::testing::TempDir();
  // Without -q: on a failure HAProxy's own message names the line.
  EXPECT_EQ(std::system((bin + " -c -f " + path + " 2>&1").c_str()), 0) << c;
}

// HAProxy's own parser accepts the text (fails, never skips, without the binary: CI must run
// the real path).
TEST(HaproxyConfigTest, HaproxyAcceptsIt) {
  const std::string bin = HaproxyBinary();
  ASSERT_EQ(::access(bin.c_str(), X_OK), 0)
      << bin << " not found (hint: run `bash scripts/setup.sh test`, which installs haproxy)";
  const std::string path = WriteConfig("haproxy_config_test.cfg", HaproxyConfig(TwoCoordinators()));
  ASSERT_FALSE(path.empty()) << "cannot write in " << ::testing::TempDir();
  const std::string cmd = bin + " -c -f " + path + " 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << HaproxyConfig(TwoCoordinators());
}

// The test helper fails (the caller's test fails, never skips) when HAProxy is missing, and
// says how to install it.
TEST(HaproxyServerTest, MissingBinaryFailsNamingTheSetupProfile) {
  ::setenv("FEDLORA_HAPROXY", "/nonexistent/haproxy", 1);
  testing::HaproxyServer server(::testing::TempDir() + "/haproxy_missing", {});
  ::unsetenv("FEDLORA_HAPROXY");
  EXPECT_FALSE(server.ok());
  EXPECT_THAT(server.error(), HasSubstr("bash scripts/setup.sh test"));
}

// Started for real: the front end accepts connections, and the log shows the health checks
// marking a backend that does not listen DOWN; Stop() ends it.
TEST(HaproxyServerTest, StartsChecksItsBackendsAndStops) {
  const int dead = testing::FreeLoopbackPort();
  testing::HaproxyServer server(::testing::TempDir() + "/haproxy_run",
                                {{"coord-0", "127.0.0.1", dead, dead}});
  ASSERT_TRUE(server.ok()) << server.error();
  EXPECT_THAT(server.config(), HasSubstr("server coord-0 127.0.0.1:" + std::to_string(dead)));
  for (int i = 0; i < 100 && server.Log().find("is DOWN") == std::string::npos; ++i) {
    ::usleep(50000);
  }
  EXPECT_THAT(server.Log(), HasSubstr("coordinators/coord-0 is DOWN"));
  server.Stop();
  EXPECT_FALSE(server.running());
}

}  // namespace
}  // namespace fedlora
