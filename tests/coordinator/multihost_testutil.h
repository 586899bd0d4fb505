// The fixture of the multi-host process tests (issue 30): a throwaway PostgreSQL server, a
// state folder made by `coordinator init --store`, coordinator processes that lead or wait as
// standbys by lease, optionally `coordinator edge` processes, HAProxy in front of the edges or
// else the coordinators (the config `fedlora cluster` writes), and `device run` processes
// pointed at HAProxy. Every process real, loopback, bounded time.
#ifndef FEDLORA_TESTS_COORDINATOR_MULTIHOST_TESTUTIL_H_
#define FEDLORA_TESTS_COORDINATOR_MULTIHOST_TESTUTIL_H_

#if FEDLORA_HAVE_POSTGRESQL

#include <httplib.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "fedlora/coordinator/metrics_http.h"
#include "fedlora/coordinator/state_folder.h"
#include "fedlora/coordinator/store.h"
#include "process_testutil.h"
#include "testutil/haproxy_server.h"
#include "testutil/postgres_server.h"

namespace fedlora {

// The sum over all labels of a metric family on a process's /metrics (127.0.0.1:port); -1 when
// the endpoint does not answer.
inline double MetricSum(int metrics_port, const std::string& family) {
  auto sum = coordinator::ScrapeMetric("127.0.0.1", metrics_port, family);
  return sum.ok() ? *sum : -1;
}

// One coordinator process of the population: its gRPC and metrics ports, its lease name.
struct CoordinatorSlot {
  std::string holder;
  int port = 0, metrics = 0;
};

class MultiHostProcessTest : public CoordinatorProcessTest {
 protected:
  // The coordinators' --lease-ttl in seconds: 5, short enough that a takeover is quick and
  // long enough that a leader on a loaded CI machine (the full ctest at -j4 beside a build)
  // renews in time (2 s lost the lease twice in early runs); FEDLORA_TEST_LEASE_TTL overrides
  // it to measure the failover time at other ttls (docs/benchmarks.md, "Failover").
  static double LeaseTtl() {
    const char* env = std::getenv("FEDLORA_TEST_LEASE_TTL");
    return env && *env ? std::atof(env) : 5.0;
  }

  // PostgreSQL, `coordinator init --store` of a population running `rounds` rounds, `n`
  // coordinator slots, `edges` edge slots and HAProxy in front of the edges (of the
  // coordinators when there are none).
  void SetUpCluster(int rounds, int n = 2, int edges = 0, int selection_window = 6) {
    pg_ = std::make_unique<testing::PostgresServer>();
    ASSERT_TRUE(pg_->ok()) << pg_->error();
    const std::string db = pg_->CreateDatabase();
    ASSERT_FALSE(db.empty()) << pg_->error();
    Init(rounds, "--store " + testing::ShellQuote(pg_->ConnInfo(db)), /*train_deadline=*/120,
         selection_window, /*phase_deadline=*/60);
    std::vector<HaproxyBackend> backends, edge_backends;
    for (int i = 0; i < n; ++i) {
      CoordinatorSlot s{"coord-" + std::to_string(i), testing::FreeLoopbackPort(),
                        testing::FreeLoopbackPort()};
      slots_.push_back(s);
      backends.push_back({s.holder, "127.0.0.1", s.port, s.metrics});
    }
    for (int i = 0; i < edges; ++i) {
      CoordinatorSlot s{"edge-" + std::to_string(i), testing::FreeLoopbackPort(),
                        testing::FreeLoopbackPort()};
      edge_slots_.push_back(s);
      edge_backends.push_back({s.holder, "127.0.0.1", s.port, s.metrics});
    }
    haproxy_ = edges > 0 ? std::make_unique<testing::HaproxyServer>(
                               dir_ + "/haproxy", edge_backends, 500, "leastconn")
                         : std::make_unique<testing::HaproxyServer>(dir_ + "/haproxy", backends);
    ASSERT_TRUE(haproxy_->ok()) << haproxy_->error();
  }

  // `coordinator run` in slot i (leader if the lease is free, else a standby).
  ChildProcess StartSlot(int i, const std::string& name,
                         const std::map<std::string, std::string>& env = {}) {
    const CoordinatorSlot& s = slots_[i];
    return StartFedlora({"coordinator", "run", "--state", dir_ + "/coord", "--listen",
                         "127.0.0.1:" + std::to_string(s.port), "--metrics",
                         "127.0.0.1:" + std::to_string(s.metrics), "--holder", s.holder,
                         "--lease-ttl", std::to_string(LeaseTtl()), "--exit-when-done"},
                        dir_ + "/" + name, env);
  }

  // `coordinator edge` in edge slot i; ready once it logs "listening on".
  ChildProcess StartEdge(int i) {
    const CoordinatorSlot& s = edge_slots_[i];
    return StartFedlora({"coordinator", "edge", "--state", dir_ + "/coord", "--listen",
                         "127.0.0.1:" + std::to_string(s.port), "--metrics",
                         "127.0.0.1:" + std::to_string(s.metrics)},
                        dir_ + "/" + s.holder);
  }

  // A phone (the default retry policy) over TLS through HAProxy; `rounds` to complete.
  ChildProcess StartPhone(int i, int rounds) {
    return StartDevice(i, haproxy_->port(), /*insecure=*/false, rounds, /*from_store=*/false,
                       {"--epsilon-budget", "1000"}, {}, /*phone_retries=*/true);
  }

  std::unique_ptr<coordinator::Store> ReadStore() {
    auto store = coordinator::OpenStateStore(dir_ + "/coord");
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  // The ledger has no gap and no double entry: rounds 1..N each once; every charged round has
  // exactly one charge and every charge a charged round; committed versions are 2, 3, ... in
  // order. Returns the rounds.
  std::vector<coordinator::RoundRecord> CheckLedger() {
    auto store = ReadStore();
    if (!store) return {};
    auto rounds = store->ListRounds();
    auto charges = store->Charges();
    auto versions = store->ListAdapterVersions();
    EXPECT_TRUE(rounds.ok() && charges.ok() && versions.ok());
    if (!rounds.ok() || !charges.ok() || !versions.ok()) return {};
    std::set<uint64_t> charged_rounds;
    for (size_t i = 0; i < rounds->size(); ++i) {
      const auto& r = (*rounds)[i];
      EXPECT_EQ(r.round, i + 1) << "a gap or a repeated round in the ledger";
      EXPECT_NE(r.state, "running") << "round " << r.round;
      if (r.charged) charged_rounds.insert(r.round);
    }
    std::set<uint64_t> seen;
    for (const auto& c : *charges) {
      EXPECT_TRUE(seen.insert(c.round).second) << "round " << c.round << " charged twice";
      EXPECT_TRUE(charged_rounds.count(c.round))
          << "a charge for round " << c.round << " that is not marked charged";
    }
    EXPECT_EQ(seen, charged_rounds);
    for (size_t i = 0; i < versions->size(); ++i) {
      EXPECT_EQ((*versions)[i].version, i + 1);
    }
    return *rounds;
  }

  // Seconds from `since` until `p`'s stdout has a line containing `needle` (-1 after `limit`).
  static double SecondsUntilLine(ChildProcess& p, const std::string& needle,
                                 std::chrono::steady_clock::time_point since, double limit) {
    if (p.WaitForLine(needle, limit).empty()) return -1;
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
  }

  std::unique_ptr<testing::PostgresServer> pg_;
  std::unique_ptr<testing::HaproxyServer> haproxy_;
  std::vector<CoordinatorSlot> slots_, edge_slots_;
};

}  // namespace fedlora

#endif  // FEDLORA_HAVE_POSTGRESQL
#endif  // FEDLORA_TESTS_COORDINATOR_MULTIHOST_TESTUTIL_H_
