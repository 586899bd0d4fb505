// Crash safety of the store with a real process killed by SIGKILL, on every engine
// (coordinator/store_testutil.h): what was committed survives, a charge made before the crash
// stays, and the store is consistent.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "coordinator/store_testutil.h"
#include "fedlora/coordinator/store.h"
#include "gtest/gtest.h"

namespace fedlora::coordinator {
namespace {

using testing::AdapterFor;
using testing::ChargeFor;

class StoreCrashTest : public testing::StoreEngineTest {};
INSTANTIATE_TEST_SUITE_P(Engines, StoreCrashTest, ::testing::ValuesIn(testing::StoreEngines()),
                         testing::EngineName);

// Child: opens the store, commits rounds first..last, writes each committed round number to
// `fd`, and at `charge_only_round` charges and then raises SIGKILL before committing.
[[noreturn]] void ChildCommitLoop(const testing::StoreEngine& engine, int fd, uint64_t first,
                                  uint64_t last, uint64_t charge_only_round) {
  auto store = engine.Open();
  if (!store.ok()) ::_exit(2);
  for (uint64_t r = first; r <= last; ++r) {
    if (!(*store)->BeginRound(r, 3).ok()) ::_exit(3);
    if (!(*store)->ChargeRound(ChargeFor(r), {"a", absl::StrCat("d", r % 3)}).ok()) ::_exit(4);
    if (r == charge_only_round) ::raise(SIGKILL);
    if (!(*store)->CommitRound(r, 2, AdapterFor(r), absl::StrCat("opt", r)).ok()) ::_exit(5);
    if (fd >= 0 && ::write(fd, &r, sizeof(r)) != sizeof(r)) ::_exit(6);
  }
  ::_exit(0);
}

// What must hold after any crash: committed rounds have a charge and a readable version with
// the right bytes; every charge belongs to an existing round; at most `max_running` running.
void ExpectConsistent(Store& store, size_t max_running) {
  auto rounds = store.ListRounds();
  ASSERT_TRUE(rounds.ok()) << rounds.status();
  auto versions = store.ListAdapterVersions();
  ASSERT_TRUE(versions.ok());
  std::map<uint64_t, AdapterVersion> by_round;
  for (const auto& v : *versions) by_round[v.round] = v;
  std::set<uint64_t> charged;
  auto charges = store.Charges();
  ASSERT_TRUE(charges.ok());
  for (const auto& c : *charges) charged.insert(c.round);
  size_t running = 0;
  for (const RoundRecord& r : *rounds) {
    EXPECT_EQ(r.charged, charged.count(r.round) == 1) << r.round;
    if (r.state == "running") ++running;
    if (r.state != "committed") {
      EXPECT_EQ(by_round.count(r.round), 0u) << r.round;
      continue;
    }
    EXPECT_TRUE(r.charged) << r.round;
    ASSERT_EQ(by_round.count(r.round), 1u) << r.round;
    auto blob = store.ReadBlob(by_round[r.round].sha256);
    ASSERT_TRUE(blob.ok()) << blob.status();
    EXPECT_EQ(*blob, AdapterFor(r.round));
  }
  EXPECT_LE(running, max_running);
  for (size_t i = 0; i < versions->size(); ++i) EXPECT_EQ((*versions)[i].version, i + 1);
}

TEST_P(StoreCrashTest, CrashBetweenChargeAndCommitLeavesChargedRunningRound) {
  { ASSERT_NE(Open(), nullptr); }
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) ChildCommitLoop(*engine_, -1 /*no reports*/, 1, 10, 4);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status)) << "child exit " << WEXITSTATUS(status);
  EXPECT_EQ(WTERMSIG(status), SIGKILL);

  auto store = Open();
  ASSERT_NE(store, nullptr);
  ExpectConsistent(*store, 1);
  auto running = store->RunningRounds();
  ASSERT_EQ(running->size(), 1u);
  EXPECT_EQ((*running)[0].round, 4u);
  EXPECT_TRUE((*running)[0].charged);
  EXPECT_DOUBLE_EQ((*running)[0].epsilon_after, 0.4);
  EXPECT_EQ(store->Charges()->size(), 4u);
  EXPECT_EQ(store->LatestAdapter()->round, 3u);
  EXPECT_EQ(*store->OptimizerState(), "opt3");
  EXPECT_EQ(store->ParticipationCounts()->at("a"), 4);
  // Recovery: the interrupted round is aborted (its charge stays), the run continues.
  ASSERT_TRUE(store->AbortRound(4, "coordinator restarted").ok());
  EXPECT_EQ(store->Charges()->size(), 4u);
  ASSERT_TRUE(store->BeginRound(5, 3).ok());
  ASSERT_TRUE(store->ChargeRound(ChargeFor(5), {"a"}).ok());
  EXPECT_EQ(store->CommitRound(5, 1, AdapterFor(5), "").value().version, 4u);
}

TEST_P(StoreCrashTest, SigkillDuringCommitLoopLosesNothingCommitted) {
  { ASSERT_NE(Open(), nullptr); }
  for (int trial = 0; trial < 3; ++trial) {
    uint64_t first = 1;
    {
      auto store = Open();
      ASSERT_NE(store, nullptr);
      auto running = store->RunningRounds();
      ASSERT_TRUE(running.ok());
      for (const auto& r : *running) ASSERT_TRUE(store->AbortRound(r.round, "restart").ok());
      auto rounds = store->ListRounds();
      if (!rounds->empty()) first = rounds->back().round + 1;
    }
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      ChildCommitLoop(*engine_, fds[1], first, first + 100000, 0);
    }
    ::close(fds[1]);
    // Wait for a few commits, then kill at a moment that varies with the trial.
    std::vector<uint64_t> reported;
    uint64_t r = 0;
    while (reported.size() < 3u + trial && ::read(fds[0], &r, sizeof(r)) == sizeof(r)) {
      reported.push_back(r);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(700 * trial + 150));
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    while (::read(fds[0], &r, sizeof(r)) == sizeof(r)) reported.push_back(r);
    ::close(fds[0]);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child exit " << WEXITSTATUS(status);
    ASSERT_GE(reported.size(), 3u + trial);

    auto store = Open();
    ASSERT_NE(store, nullptr);
    ExpectConsistent(*store, 1);
    auto rounds = store->ListRounds();
    std::map<uint64_t, std::string> state;
    for (const auto& rr : *rounds) state[rr.round] = rr.state;
    for (uint64_t done : reported) EXPECT_EQ(state[done], "committed") << done;  // durable
  }
}

}  // namespace
}  // namespace fedlora::coordinator
