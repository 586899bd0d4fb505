// Process-level fault tests of multi-host mode (issue 30): a leader and a standby
// `coordinator run` on one PostgreSQL database, HAProxy in front (health checks on /healthz),
// two `device run` processes over TLS through HAProxy. The leader is killed mid-round, paused
// past its lease, or PostgreSQL restarts under it; or, with two edges as HAProxy's backends, an
// edge is killed with a device's check-in in flight through it. The run goes on through the
// same device processes and the ledger has no gap and no double entry.
#if FEDLORA_HAVE_POSTGRESQL

#include <signal.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <thread>

#include "fedlora/coordinator/fault_injection.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "multihost_testutil.h"

namespace fedlora {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using Clock = std::chrono::steady_clock;

class FailoverProcessTest : public MultiHostProcessTest {
 protected:
  // A run of `rounds` rounds: the leader (slot 0, `leader_env`) serving over TLS, the standby
  // (slot 1) waiting for its lease, and both phones enrolled and started through HAProxy.
  struct Run {
    std::optional<ChildProcess> leader, standby, d0, d1;
  };
  void StartRun(int rounds, Run* run, const std::map<std::string, std::string>& leader_env = {}) {
    SetUpCluster(rounds);
    run->leader.emplace(StartSlot(0, "leader", leader_env));
    ASSERT_THAT(run->leader->WaitForLine("listening on", 60), HasSubstr("(TLS)"))
        << run->leader->Err();
    run->standby.emplace(StartSlot(1, "standby"));
    ASSERT_FALSE(run->standby->WaitForLine("standby: coord-0 leads (epoch 1)", 60).empty())
        << run->standby->Out() << run->standby->Err();
    Enroll(0, haproxy_->port(), /*insecure=*/false);
    Enroll(1, haproxy_->port(), /*insecure=*/false);
    run->d0.emplace(StartPhone(0, rounds));
    run->d1.emplace(StartPhone(1, rounds));
  }
};

// kill -9 of the leader in masked_input (the crash hook SIGKILLs it there): the standby takes
// the lease once it expires and serves; the killed round is aborted and stays charged; two
// rounds then commit through HAProxy with the same device processes. Prints the failover time
// (leader killed -> standby serving, and -> next round committed): docs/benchmarks.md.
TEST_F(FailoverProcessTest, StandbyTakesOverWhenTheLeaderIsKilledMidRound) {
  if (!coordinator::kFaultInjection) GTEST_SKIP() << "needs -DFEDLORA_FAULT_INJECTION=ON";
  Run run;
  StartRun(2, &run, {{"FEDLORA_COORDINATOR_CRASH_AT", "masked_input"}});
  if (HasFatalFailure()) return;
  ChildProcess &leader = *run.leader, &standby = *run.standby, &d0 = *run.d0, &d1 = *run.d1;
  ASSERT_EQ(leader.Wait(240), 128 + SIGKILL)
      << "the leader did not reach its crash point (if it logged \"stepping down\", this "
         "machine stalled it longer than the lease ttl; see its \"lease renewal\" lines):\n"
      << leader.Out() << leader.Err() << d0.Out();
  const auto killed = Clock::now();
  const double serving = SecondsUntilLine(standby, "listening on", killed, 60);
  ASSERT_GE(serving, 0) << standby.Out() << standby.Err();
  EXPECT_LT(serving, LeaseTtl() * 1.25 + 3)
      << "the standby took longer than the lease ttl + its poll (ttl/4) + 3 s";
  // `coordinator status` on the multi-host folder names the new leader.
  const auto lease = Status()["lease"];
  EXPECT_EQ(lease["holder"], "coord-1") << lease.dump();
  EXPECT_EQ(lease["epoch"], 2) << lease.dump();
  EXPECT_EQ(lease["valid"], true) << lease.dump();
  const double committed = SecondsUntilLine(standby, "committed: adapter version 2", killed, 300);
  ASSERT_GE(committed, 0) << standby.Out() << d0.Out() << d0.Err();
  std::printf(
      "failover (lease ttl %.0f s): leader killed -> standby serving %.2f s, -> next "
      "round committed %.2f s\n",
      LeaseTtl(), serving, committed);
  for (ChildProcess* d : {&d0, &d1}) {
    ASSERT_EQ(d->Wait(300), 0) << d->Out() << d->Err() << "\nstandby:\n" << standby.Out();
    EXPECT_THAT(d->Out(), HasSubstr("2 rounds completed"));
  }
  ASSERT_EQ(standby.Wait(60), 0) << standby.Out() << standby.Err();
  EXPECT_THAT(standby.Out(), HasSubstr("leader of population 'global' as coord-1 (epoch 2)"));
  EXPECT_THAT(standby.Out(), HasSubstr("aborted: coordinator restarted during masked_input"));
  EXPECT_THAT(standby.Out(), HasSubstr("committed: adapter version 3"));
  const auto rounds = CheckLedger();
  int restarted = 0, committed_rounds = 0;
  for (const auto& r : rounds) {
    EXPECT_TRUE(r.charged) << "round " << r.round;
    restarted += r.abort_reason == "coordinator restarted during masked_input";
    committed_rounds += r.state == "committed";
  }
  EXPECT_EQ(restarted, 1);
  EXPECT_EQ(committed_rounds, 2);
}

// SIGSTOP of the leader past its lease: the standby takes over and the run goes on; after
// SIGCONT the old leader is fenced, steps down, commits nothing and waits as a standby; once
// the new leader finishes the run and stops cleanly, the old one leads again (epoch 3).
TEST_F(FailoverProcessTest, PausedLeaderIsFencedAndStepsDownAfterSigcont) {
  Run run;
  StartRun(3, &run);
  if (HasFatalFailure()) return;
  ChildProcess &a = *run.leader, &b = *run.standby, &d0 = *run.d0, &d1 = *run.d1;
  ASSERT_FALSE(a.WaitForLine("committed: adapter version 2", 300).empty())
      << a.Out() << d0.Out() << d0.Err();
  ::kill(a.pid(), SIGSTOP);
  const auto stopped = Clock::now();
  const double serving = SecondsUntilLine(b, "listening on", stopped, 60);
  ASSERT_GE(serving, 0) << b.Out() << b.Err();
  std::printf("paused leader: SIGSTOP -> standby serving %.2f s\n", serving);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  const size_t before_cont = a.Out().size();
  ::kill(a.pid(), SIGCONT);
  ASSERT_FALSE(a.WaitForLine("stepping down: fenced", 30).empty()) << a.Out() << a.Err();
  ASSERT_FALSE(a.WaitForLine("stepped down; waiting as a standby", 30).empty()) << a.Out();
  for (ChildProcess* d : {&d0, &d1}) {
    ASSERT_EQ(d->Wait(400), 0) << d->Out() << d->Err() << "\nb:\n" << b.Out();
    EXPECT_THAT(d->Out(), HasSubstr("3 rounds completed"));
  }
  ASSERT_EQ(b.Wait(60), 0) << b.Out() << b.Err();
  EXPECT_THAT(b.Out(), HasSubstr("committed: adapter version 4"));
  // b's clean stop released the lease: a leads again (epoch 3), finds the run finished, exits.
  ASSERT_FALSE(a.WaitForLine("as coord-0 (epoch 3)", 30).empty()) << a.Out() << a.Err();
  EXPECT_EQ(a.Wait(60), 0) << a.Out() << a.Err();
  // Between SIGCONT and that handover the old leader served nothing and committed nothing.
  std::string fenced = a.Out().substr(before_cont);
  fenced = fenced.substr(0, fenced.find("as coord-0 (epoch 3)"));
  EXPECT_THAT(fenced, HasSubstr("standby: coord-1 leads (epoch 2)"));
  EXPECT_THAT(fenced, Not(HasSubstr("committed: adapter version")));
  EXPECT_THAT(fenced, Not(HasSubstr("listening on")));
  EXPECT_THAT(a.Out().substr(before_cont), Not(HasSubstr("committed: adapter version")));
  CheckLedger();
}

// PostgreSQL is stopped mid-round (round 2 sampled and charged) for longer than the lease and
// started again on the same data: the leader steps down (it could not renew), a coordinator
// leads again once the database is back and aborts round 2 if it had not committed (its charge
// stays), nothing committed or charged before the outage is lost, and the run commits its
// remaining rounds with the same device processes.
TEST_F(FailoverProcessTest, PostgresRestartMidRoundLosesNothingCommitted) {
  Run run;
  StartRun(2, &run);
  if (HasFatalFailure()) return;
  ChildProcess &a = *run.leader, &b = *run.standby, &d0 = *run.d0, &d1 = *run.d1;
  // Round 2 under way: sampled and charged, its devices training or in secure aggregation
  // (on this tiny model it may commit within a few ms: whichever it is, the store must keep).
  ASSERT_FALSE(a.WaitForLine("round 2: sample within", 300).empty())
      << a.Out() << d0.Out() << d0.Err();
  pg_->Stop();
  // What the leader reported before the outage: each line is printed after its transaction
  // committed, so every such round must be in the store afterwards.
  const std::string reported = a.Out();
  std::this_thread::sleep_for(std::chrono::seconds(static_cast<int>(LeaseTtl()) + 2));
  ASSERT_EQ(pg_->Start(), "");
  for (ChildProcess* d : {&d0, &d1}) {
    ASSERT_EQ(d->Wait(400), 0) << d->Out() << d->Err() << "\na:\n"
                               << a.Out() << "\nb:\n"
                               << b.Out();
    EXPECT_THAT(d->Out(), HasSubstr("2 rounds completed"));
  }
  EXPECT_THAT(a.Out() + b.Out(), HasSubstr("committed: adapter version 3"));
  const auto rounds = CheckLedger();
  // Round 2 aborted by the outage and a third round committed, or (the tiny model can commit
  // round 2 within ms of sampling it, before the database stops) both committed.
  ASSERT_GE(rounds.size(), 2u);
  EXPECT_EQ(rounds[0].state, "committed");
  EXPECT_TRUE(rounds[1].charged) << "round 2 was charged before the outage";
  auto store = ReadStore();
  ASSERT_NE(store, nullptr);
  const auto charges = *store->Charges();
  const auto versions = *store->ListAdapterVersions();
  for (uint64_t round : {1, 2}) {
    const std::string sampled = "round " + std::to_string(round) + ": sample within";
    const size_t at = reported.find(sampled);
    ASSERT_NE(at, std::string::npos) << reported;
    // "... charged, epsilon E": the charge with that epsilon survives the restart.
    const size_t eps_at = reported.find("charged, epsilon ", at);
    const double eps = std::stod(reported.substr(eps_at + 17));
    bool found = false;
    for (const auto& c : charges)
      found |= c.round == round && std::abs(c.epsilon_after - eps) < 1e-3 * eps;
    EXPECT_TRUE(found) << "the charge of round " << round << " (epsilon " << eps << ") is lost";
    // A commit reported before the outage survives it too.
    const std::string commit = "round " + std::to_string(round) + " committed: adapter version ";
    if (const size_t c = reported.find(commit); c != std::string::npos) {
      const uint64_t v = std::stoull(reported.substr(c + commit.size()));
      ASSERT_GE(versions.size(), v);
      EXPECT_EQ(versions[v - 1].round, round);
      EXPECT_EQ(rounds[round - 1].state, "committed");
    } else {
      EXPECT_EQ(rounds[round - 1].state, "aborted") << "round " << round;
    }
  }
  for (ChildProcess* c : {&a, &b}) {
    c->Kill(SIGTERM);
    EXPECT_NE(c->Wait(30), -1);
  }
}

// kill -9 of an edge while both devices' sampled check-ins wait at the leader (forwarded by
// the edges until the selection window ends): the forwarded call dies with the edge, the
// device retries, HAProxy sends it to the other edge (a refused connection is redispatched,
// the dead edge is marked down by its health check), and the leader takes the retry as the
// same device checking in again (the newest call waits). Round 1 commits with both devices,
// as does round 2 behind the one edge left; no round is aborted.
TEST_F(FailoverProcessTest, KilledEdgeItsDevicesRetryThroughHaproxyOntoTheOtherEdge) {
  SetUpCluster(/*rounds=*/2, /*n=*/1, /*edges=*/2, /*selection_window=*/12);
  auto leader = StartSlot(0, "leader");
  ASSERT_THAT(leader.WaitForLine("listening on", 60), HasSubstr("(TLS)")) << leader.Err();
  std::vector<ChildProcess> edges;
  edges.reserve(2);
  for (int i = 0; i < 2; ++i) {
    edges.push_back(StartEdge(i));
    ASSERT_FALSE(edges.back().WaitForLine("listening on", 60).empty()) << edges.back().Err();
  }
  Enroll(0, haproxy_->port(), /*insecure=*/false);
  Enroll(1, haproxy_->port(), /*insecure=*/false);
  auto d0 = StartPhone(0, 2);
  auto d1 = StartPhone(1, 2);
  // Both devices have had their coin (q = 1: sampled, so forwarded and waiting at the leader).
  const auto coins = [&](int e) {
    return MetricSum(edge_slots_[e].metrics, "fedlora_edge_checkins_total");
  };
  const auto deadline = Clock::now() + std::chrono::seconds(120);
  while (coins(0) + coins(1) < 2 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_GE(coins(0) + coins(1), 2) << d0.Out() << d0.Err() << leader.Out();
  ASSERT_TRUE(leader.Out().find("sample within") == std::string::npos)
      << "the selection window closed before the edge was killed:\n"
      << leader.Out();
  const int victim = coins(0) >= coins(1) ? 0 : 1, other = 1 - victim;
  const double victim_coins = coins(victim);
  ASSERT_EQ(::kill(edges[victim].pid(), SIGKILL), 0);
  ASSERT_NE(edges[victim].Wait(10), -1);
  const double other_forwarded_before =
      MetricSum(edge_slots_[other].metrics, "fedlora_edge_forwarded_total");
  const auto killed = Clock::now();
  for (ChildProcess* d : {&d0, &d1}) {
    ASSERT_EQ(d->Wait(300), 0) << d->Out() << d->Err() << "\nleader:\n" << leader.Out();
    EXPECT_THAT(d->Out(), HasSubstr("2 rounds completed"));
  }
  // Two 12 s windows, not the two minutes of a device sent away after round 1 by a closed
  // window its edge read before the commit (EdgeRoundsOptions::reread_after).
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - killed).count(), 90)
      << d0.Out() << d1.Out();
  ASSERT_EQ(leader.Wait(60), 0) << leader.Out() << leader.Err();
  // Round 1, under way when the edge died, committed with both devices.
  EXPECT_THAT(leader.Out(), HasSubstr("committed: adapter version 2"));
  EXPECT_THAT(leader.Out(), HasSubstr("committed: adapter version 3"));
  // HAProxy marked the killed edge down after it had been up (its start logs a DOWN too).
  const std::string hlog = haproxy_->Log(), victim_name = "edge-" + std::to_string(victim);
  const size_t up = hlog.rfind(victim_name + " is UP");
  ASSERT_NE(up, std::string::npos) << hlog;
  EXPECT_NE(hlog.find(victim_name + " is DOWN", up), std::string::npos) << hlog;
  // The device behind it saw its forwarded call die and retried.
  EXPECT_THAT(d0.Out() + d1.Out(), HasSubstr("transient error"));
  // The retries (a second coin for the killed edge's devices) and every later call went
  // through the other edge: both devices' secure aggregation of both rounds.
  EXPECT_GE(coins(other), 2 + victim_coins);
  EXPECT_GE(MetricSum(edge_slots_[other].metrics, "fedlora_edge_forwarded_total"),
            other_forwarded_before + 2);
  const auto rounds = CheckLedger();
  ASSERT_EQ(rounds.size(), 2u);
  for (const auto& r : rounds) {
    EXPECT_EQ(r.state, "committed") << "round " << r.round << ": " << r.abort_reason;
  }
  edges[other].Kill(SIGTERM);
  EXPECT_NE(edges[other].Wait(30), -1);
}

}  // namespace
}  // namespace fedlora

#endif  // FEDLORA_HAVE_POSTGRESQL
