// The PostgreSQL store beyond the engine-independent contract (store_test.cc): a server
// restart, and the leader lease with fencing (leader_lease.h). Built when libpq is found; the
// tests FAIL (never skip) when the PostgreSQL binaries are missing.
#if FEDLORA_HAVE_POSTGRESQL

#include <libpq-fe.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "coordinator/store_testutil.h"
#include "fedlora/coordinator/leader_lease.h"
#include "fedlora/coordinator/store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testutil/cli_runner.h"
#include "testutil/postgres_server.h"

namespace fedlora::coordinator {
namespace {

using ::testing::HasSubstr;
using std::chrono::milliseconds;

using testing::ChargeFor;
std::string Blob(uint64_t r) { return testing::AdapterFor(r); }

// Everything a store holds, as text (to show that refused writes changed nothing).
std::string Dump(Store& s) {
  std::string out;
  auto rounds = s.ListRounds();
  auto charges = s.Charges();
  auto participants = s.ParticipantsByRound();
  auto versions = s.ListAdapterVersions();
  auto optimizer = s.OptimizerState();
  auto devices = s.ListDevices();
  auto tokens = s.CountUnusedTokens();
  auto releases = s.ListReleases();
  auto events = s.ListReleaseEvents();
  auto device_releases = s.ListDeviceReleases();
  auto meta = s.GetMeta("coordinator_id");
  for (const absl::Status& st : {rounds.status(), charges.status(), participants.status(),
                                 versions.status(), optimizer.status(), devices.status(),
                                 tokens.status(), releases.status(), events.status(),
                                 device_releases.status()}) {
    if (!st.ok()) return st.ToString();
  }
  for (const auto& r : *rounds) {
    absl::StrAppend(&out, "round ", r.round, " ", r.state, " ", r.phase, " ", r.abort_reason, " ",
                    r.selected, " ", r.summed, " ", r.charged, " ", r.epsilon_after, "\n");
  }
  for (const auto& c : *charges) absl::StrAppend(&out, "charge ", c.round, " ", c.mechanism, "\n");
  for (const auto& [r, ids] : *participants) {
    for (const auto& id : ids) absl::StrAppend(&out, "participant ", r, " ", id, "\n");
  }
  for (const auto& v : *versions) {
    absl::StrAppend(&out, "version ", v.version, " ", v.sha256, " ", v.round, "\n");
  }
  absl::StrAppend(&out, "optimizer ", *optimizer, "\n");
  for (const auto& d : *devices) {
    absl::StrAppend(&out, "device ", d.device_id, " ", d.revoked, " ", d.revoked_reason, "\n");
  }
  absl::StrAppend(&out, "unused tokens ", *tokens, "\n");
  for (const auto& r : *releases) {
    absl::StrAppend(&out, "release ", r.version, " ", r.state, " ", r.percent, "\n");
  }
  for (const auto& e : *events) absl::StrAppend(&out, "event ", e.version, " ", e.action, "\n");
  for (const auto& d : *device_releases) {
    absl::StrAppend(&out, "device release ", d.device_id, " ", d.running_version, "\n");
  }
  absl::StrAppend(&out, "meta ", meta.ok() ? *meta : "(none)", "\n");
  return out;
}

ReleaseRecord Release(uint64_t version) {
  ReleaseRecord r;
  r.version = version;
  r.release_id = absl::StrCat("rel-", version);
  r.base_model_sha256 = std::string(64, 'b');
  r.manifest_json = "{}";
  r.percent = 10;
  return r;
}

// ---- A server restart.

TEST(PgStoreRestartTest, RestartLosesNothingCommittedAndDownMeansUnavailable) {
  fedlora::testing::PostgresServer server;  // its own server: this test stops it
  ASSERT_TRUE(server.ok()) << server.error();
  const std::string db = server.CreateDatabase();
  ASSERT_FALSE(db.empty()) << server.error();
  auto opened = OpenPostgresStore(server.ConnInfo(db));
  ASSERT_TRUE(opened.ok()) << opened.status();
  Store& store = **opened;
  ASSERT_TRUE(store.PutInitialAdapter(Blob(0)).ok());
  for (uint64_t r = 1; r <= 3; ++r) {
    ASSERT_TRUE(store.BeginRound(r, 3).ok());
    ASSERT_TRUE(store.ChargeRound(ChargeFor(r), {"a", absl::StrCat("d", r)}).ok());
    ASSERT_TRUE(store.CommitRound(r, 2, Blob(r), absl::StrCat("opt", r)).ok());
  }
  ASSERT_TRUE(store.BeginRound(4, 3).ok());
  ASSERT_TRUE(store.ChargeRound(ChargeFor(4), {"a"}).ok());  // charged, not committed
  const std::string before = Dump(store);

  server.Stop();
  // Every kind of call while the server is down: UNAVAILABLE with a hint, no crash.
  for (const absl::Status& s :
       {store.BeginRound(5, 3), store.ListRounds().status(), store.GetDevice("a").status(),
        store.CommitRound(4, 1, Blob(4), "").status(), store.ReadBlob(std::string(64, 'a')).status(),
        store.BeginRound(5, 3)}) {
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
    EXPECT_THAT(s.message(), HasSubstr("running and reachable"));
  }

  ASSERT_EQ(server.Start(), "");
  // The same store object reconnects at its next call; a new one sees the same state.
  EXPECT_EQ(Dump(store), before);
  auto reopened = OpenPostgresStore(server.ConnInfo(db));
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ(Dump(**reopened), before);
  EXPECT_EQ(*store.ReadBlob(store.LatestAdapter()->sha256), Blob(3));
  auto running = store.RunningRounds();
  ASSERT_EQ(running->size(), 1u);
  EXPECT_TRUE((*running)[0].charged);
  EXPECT_EQ(store.Charges()->size(), 4u);
  // And the run goes on: the charged round is committed after the restart.
  auto v = store.CommitRound(4, 1, Blob(4), "");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->version, 5u);
}

TEST(PgStoreOpenTest, UnreachableServerAndMissingDatabaseSayWhatToDo) {
  auto& server = testing::SharedPostgres();
  ASSERT_TRUE(server.ok()) << server.error();
  auto missing = OpenPostgresStore(server.ConnInfo("no_such_database"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition) << missing.status();
  EXPECT_THAT(missing.status().message(), HasSubstr("createdb"));
  auto nowhere = OpenPostgresStore("host=/nonexistent-folder port=1 dbname=x connect_timeout=2");
  EXPECT_EQ(nowhere.status().code(), absl::StatusCode::kUnavailable) << nowhere.status();
  const std::string db = server.CreateDatabase();
  ASSERT_EQ(server.Exec(db, "CREATE TABLE rounds (x INTEGER)"), "");
  auto foreign = OpenPostgresStore(server.ConnInfo(db));
  EXPECT_EQ(foreign.status().code(), absl::StatusCode::kFailedPrecondition) << foreign.status();
  EXPECT_THAT(foreign.status().message(), HasSubstr("own database"));
}

// Writers in different processes (e.g. `coordinator run` beside `coordinator release` on
// another host) are serialized by the store's advisory lock as SQLite serializes them: two
// processes committing rounds at once get versions 1..N with no conflict and no gap.
TEST(PgStoreOpenTest, TwoProcessesWritingAtOnceAreSerialized) {
  auto& server = testing::SharedPostgres();
  ASSERT_TRUE(server.ok()) << server.error();
  const std::string conninfo = server.ConnInfo(server.CreateDatabase());
  ASSERT_TRUE(OpenPostgresStore(conninfo).ok());  // the schema, before the race
  constexpr uint64_t kRounds = 40;
  std::vector<pid_t> children;
  for (uint64_t child = 0; child < 2; ++child) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto store = OpenPostgresStore(conninfo);
      if (!store.ok()) ::_exit(2);
      for (uint64_t i = 0; i < kRounds; ++i) {
        const uint64_t r = child * 1000 + i + 1;
        if (!(*store)->BeginRound(r, 1).ok()) ::_exit(3);
        if (!(*store)->ChargeRound(ChargeFor(r), {absl::StrCat("d", child)}).ok()) ::_exit(4);
        if (!(*store)->CommitRound(r, 1, absl::StrCat("blob", r), "").ok()) ::_exit(5);
      }
      ::_exit(0);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  }
  auto store = OpenPostgresStore(conninfo);
  ASSERT_TRUE(store.ok());
  auto versions = (*store)->ListAdapterVersions();
  ASSERT_TRUE(versions.ok());
  ASSERT_EQ(versions->size(), 2 * kRounds);
  for (size_t i = 0; i < versions->size(); ++i) EXPECT_EQ((*versions)[i].version, i + 1);
  EXPECT_EQ((*store)->Charges()->size(), 2 * kRounds);
}

// SQLite stores any bytes in a TEXT column; PostgreSQL text cannot hold a NUL byte, and libpq
// would cut the value at it: such a value is refused, never stored cut short.
TEST(PgStoreOpenTest, TextWithANulByteIsRefusedNotCut) {
  auto& server = testing::SharedPostgres();
  ASSERT_TRUE(server.ok()) << server.error();
  auto store = OpenPostgresStore(server.ConnInfo(server.CreateDatabase()));
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->BeginRound(1, 1).ok());
  absl::Status s = (*store)->SetRoundPhase(1, std::string("share\0keys", 10));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(s.message(), HasSubstr("NUL byte"));
  EXPECT_EQ((*(*store)->ListRounds())[0].phase, "");
}

TEST(PgStoreOpenTest, NewerSchemaIsRefused) {
  auto& server = testing::SharedPostgres();
  ASSERT_TRUE(server.ok()) << server.error();
  const std::string db = server.CreateDatabase();
  ASSERT_TRUE(OpenPostgresStore(server.ConnInfo(db)).ok());
  ASSERT_EQ(server.Exec(db, "UPDATE fedlora_schema SET version = 99"), "");
  auto s = OpenPostgresStore(server.ConnInfo(db));
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.status().message(), HasSubstr("newer fedlora"));
}

TEST(PgStoreOpenTest, VersionLineSaysPostgresIsBuiltIn) {
  EXPECT_TRUE(PostgresSupported());
  auto v = fedlora::testing::RunFedlora("--version", ::testing::TempDir());
  ASSERT_EQ(v.exit_code, 0) << v.err;
  EXPECT_THAT(v.out, HasSubstr("PostgreSQL store: on"));
}

// ---- The leader lease and fencing.

class LeaderLeaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.ok()) << server_.error();
    db_ = server_.CreateDatabase();
    ASSERT_FALSE(db_.empty()) << server_.error();
  }
  std::string ConnInfo() const { return server_.ConnInfo(db_); }
  std::unique_ptr<LeaderLease> Lease() {
    auto l = OpenLeaderLease(ConnInfo(), "global");
    EXPECT_TRUE(l.ok()) << l.status();
    return l.ok() ? std::move(*l) : nullptr;
  }
  fedlora::testing::PostgresServer& server_ = testing::SharedPostgres();
  std::string db_;
};

TEST_F(LeaderLeaseTest, OneHolderAtATimeAndEveryTakeoverIncrementsTheEpoch) {
  auto a = Lease(), b = Lease(), c = Lease();
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(a->Current().status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(a->TryAcquire("", milliseconds(1000)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a->Renew().code(), absl::StatusCode::kFailedPrecondition);  // never acquired
  // ttl 2 s, and margins of at least 0.6 s around it (this machine may be loaded).
  ASSERT_TRUE(*a->TryAcquire("host-a", milliseconds(2000)));
  EXPECT_EQ(a->epoch(), 1u);
  EXPECT_GT(a->valid_until(), std::chrono::steady_clock::now());
  EXPECT_FALSE(*b->TryAcquire("host-b", milliseconds(2000)));  // A's lease is valid
  EXPECT_EQ(b->epoch(), 0u);
  auto now = b->Current();
  ASSERT_TRUE(now.ok()) << now.status();
  EXPECT_EQ(now->holder, "host-a");
  EXPECT_EQ(now->epoch, 1u);
  EXPECT_GT(now->expires_in_seconds, 0);
  // Renewing keeps it past the first ttl.
  std::this_thread::sleep_for(milliseconds(1400));
  ASSERT_TRUE(a->Renew().ok());
  std::this_thread::sleep_for(milliseconds(1400));
  EXPECT_FALSE(*b->TryAcquire("host-b", milliseconds(2000)));
  // A stops renewing (paused); past the ttl B takes over with the next epoch.
  std::this_thread::sleep_for(milliseconds(1300));
  ASSERT_TRUE(*b->TryAcquire("host-b", milliseconds(5000)));
  EXPECT_EQ(b->epoch(), 2u);
  absl::Status renew = a->Renew();
  EXPECT_EQ(renew.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(renew.message(), HasSubstr("fenced: this process's leadership (epoch 1) was taken "
                                         "over by epoch 2"));
  EXPECT_THAT(renew.message(), HasSubstr("step down"));
  ASSERT_TRUE(a->Release().ok());  // a stale holder's release changes nothing
  EXPECT_FALSE(*c->TryAcquire("host-c", milliseconds(600)));
  // B steps down at once: C need not wait for B's ttl.
  ASSERT_TRUE(b->Release().ok());
  ASSERT_TRUE(*c->TryAcquire("host-c", milliseconds(600)));
  EXPECT_EQ(c->epoch(), 3u);
  EXPECT_EQ(c->fence().epoch, 3u);
  EXPECT_EQ(c->fence().population, "global");
}

TEST_F(LeaderLeaseTest, EveryWriteOfAFencedOutLeaderIsRefusedAndChangesNothing) {
  auto lease_a = Lease(), lease_b = Lease();
  ASSERT_TRUE(lease_a && lease_b);
  ASSERT_TRUE(*lease_a->TryAcquire("host-a", milliseconds(300)));
  auto a_or = OpenPostgresStore(ConnInfo(), lease_a->fence());
  ASSERT_TRUE(a_or.ok()) << a_or.status();
  Store& a = **a_or;
  // A leads: a committed round, a running charged round, a device, a release.
  ASSERT_TRUE(a.AddEnrollmentTokens({Sha256Hex("t1"), Sha256Hex("t2")}).ok());
  ASSERT_TRUE(a.EnrollDevice(Sha256Hex("t1"), {"dev-1", std::string(32, 'k'), 0, false, ""}).ok());
  ASSERT_TRUE(a.PutInitialAdapter(Blob(0)).ok());
  ASSERT_TRUE(a.BeginRound(1, 2).ok());
  ASSERT_TRUE(a.ChargeRound(ChargeFor(1), {"dev-1"}).ok());
  ASSERT_TRUE(a.CommitRound(1, 1, Blob(1), "opt1").ok());
  ASSERT_TRUE(a.BeginRound(2, 2).ok());
  ASSERT_TRUE(a.ChargeRound(ChargeFor(2), {"dev-1"}).ok());
  ASSERT_TRUE(a.PublishRelease(Release(1), "bundle-1").ok());
  ASSERT_TRUE(a.PutMeta("coordinator_id", "a").ok());

  // A is paused past its lease; B takes over.
  std::this_thread::sleep_for(milliseconds(600));
  ASSERT_TRUE(*lease_b->TryAcquire("host-b", milliseconds(10000)));
  ASSERT_EQ(lease_b->epoch(), 2u);
  auto observer = OpenPostgresStore(ConnInfo());
  ASSERT_TRUE(observer.ok());
  const std::string before = Dump(**observer);
  std::string blobs_before;
  ASSERT_EQ(server_.Exec(db_, "SELECT COUNT(*) FROM blobs", &blobs_before), "");

  // A wakes up: every write is refused by fencing.
  ReleaseRecord halted = Release(1);
  halted.state = "halted";
  const std::vector<std::pair<std::string, absl::Status>> writes = {
      {"AddEnrollmentTokens", a.AddEnrollmentTokens({Sha256Hex("t3")})},
      {"EnrollDevice", a.EnrollDevice(Sha256Hex("t2"), {"dev-2", std::string(32, 'q'), 0, false, ""})},
      {"RevokeDevice", a.RevokeDevice("dev-1", "stale")},
      {"BeginRound", a.BeginRound(3, 2)},
      {"SetRoundPhase", a.SetRoundPhase(2, "unmask")},
      {"ChargeRound", a.ChargeRound(ChargeFor(3), {"dev-1"})},
      {"CommitRound", a.CommitRound(2, 1, Blob(2), "opt2").status()},
      {"AbortRound", a.AbortRound(2, "stale leader")},
      {"PutInitialAdapter", a.PutInitialAdapter(Blob(9)).status()},
      {"PublishRelease", a.PublishRelease(Release(2), "bundle-2")},
      {"UpdateRelease", a.UpdateRelease(halted, "halt")},
      {"RecordDeviceReleases", a.RecordDeviceReleases({{"dev-1", 1, 0, 0}})},
      {"PutMeta", a.PutMeta("coordinator_id", "stale")},
  };
  for (const auto& [name, s] : writes) {
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << name << ": " << s;
    EXPECT_THAT(s.message(),
                HasSubstr("fenced: this process's leadership (epoch 1) was taken over by epoch 2"))
        << name;
    EXPECT_THAT(s.message(), HasSubstr("step down")) << name;
  }
  EXPECT_EQ(Dump(**observer), before);
  std::string blobs_after;
  ASSERT_EQ(server_.Exec(db_, "SELECT COUNT(*) FROM blobs", &blobs_after), "");
  EXPECT_EQ(blobs_after, blobs_before);
  // Reads still work for the stale process (it can report, not write).
  EXPECT_EQ(a.RunningRounds()->size(), 1u);

  // B writes fine: it aborts the interrupted round (its charge stays) and commits the next.
  auto b_or = OpenPostgresStore(ConnInfo(), lease_b->fence());
  ASSERT_TRUE(b_or.ok()) << b_or.status();
  Store& b = **b_or;
  ASSERT_TRUE(b.AbortRound(2, "leader changed").ok());
  ASSERT_TRUE(b.BeginRound(3, 2).ok());
  ASSERT_TRUE(b.ChargeRound(ChargeFor(3), {"dev-1"}).ok());
  auto v = b.CommitRound(3, 1, Blob(3), "");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->version, 3u);
  EXPECT_EQ(b.Charges()->size(), 3u);  // rounds 1, 2 (aborted, charged) and 3: no gap, no double
}

TEST_F(LeaderLeaseTest, AStoreFencedOnALeaseNeverAcquiredCannotWrite) {
  auto s = OpenPostgresStore(ConnInfo(), StoreFence{"global", 7});
  ASSERT_TRUE(s.ok()) << s.status();
  absl::Status w = (*s)->BeginRound(1, 1);
  EXPECT_EQ(w.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(w.message(), HasSubstr("no leader lease"));
  EXPECT_EQ(OpenPostgresStore(ConnInfo(), StoreFence{"", 1}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// A leader paused inside a writing transaction holds the lease row (FOR SHARE, as every fenced
// write does). A standby's TryAcquire does not hang on it (false within a few seconds), and
// takes over once the server has ended the paused session (idle_in_transaction_session_timeout,
// which a fenced store sets on its write connection).
TEST_F(LeaderLeaseTest, TakeoverDoesNotHangOnAWriterPausedInsideItsTransaction) {
  auto a = Lease(), b = Lease();
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(*a->TryAcquire("host-a", milliseconds(200)));
  PGconn* paused = PQconnectdb(ConnInfo().c_str());
  ASSERT_EQ(PQstatus(paused), CONNECTION_OK) << PQerrorMessage(paused);
  for (const char* sql : {"SET idle_in_transaction_session_timeout = 5000", "BEGIN",
                          "SELECT epoch FROM leader_leases WHERE population = 'global' "
                          "FOR SHARE"}) {
    PGresult* r = PQexec(paused, sql);
    ASSERT_TRUE(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK)
        << sql << ": " << PQresultErrorMessage(r);
    PQclear(r);
  }
  std::this_thread::sleep_for(milliseconds(300));  // A's lease has expired
  const auto start = std::chrono::steady_clock::now();
  auto first = b->TryAcquire("host-b", milliseconds(5000));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(*first);  // the row is locked by the paused transaction: not now
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  bool acquired = false;
  const auto deadline = start + std::chrono::seconds(20);
  while (!acquired && std::chrono::steady_clock::now() < deadline) {
    auto got = b->TryAcquire("host-b", milliseconds(5000));
    ASSERT_TRUE(got.ok()) << got.status();
    acquired = *got;
    if (!acquired) std::this_thread::sleep_for(milliseconds(200));
  }
  EXPECT_TRUE(acquired);  // the server ended the paused session, and its lock with it
  EXPECT_EQ(b->epoch(), 2u);
  PQfinish(paused);
}

// Two real processes: a child holds the lease and writes; it is SIGSTOPped past its lease, the
// parent takes over, and after SIGCONT every write the child attempts is refused.
TEST_F(LeaderLeaseTest, SigstoppedLeaderIsFencedAfterSigcont) {
  int to_child[2], from_child[2];
  ASSERT_EQ(::pipe(to_child), 0);
  ASSERT_EQ(::pipe(from_child), 0);
  const std::string conninfo = ConnInfo();
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(to_child[1]);
    ::close(from_child[0]);
    auto lease = OpenLeaderLease(conninfo, "global");
    if (!lease.ok() || !*(*lease)->TryAcquire("child", milliseconds(400))) ::_exit(2);
    auto store = OpenPostgresStore(conninfo, (*lease)->fence());
    if (!store.ok()) ::_exit(3);
    // One write per byte from the parent; reports the status code of each.
    char cmd = 0;
    for (uint64_t round = 1; ::read(to_child[0], &cmd, 1) == 1; ++round) {
      const int code = static_cast<int>((*store)->BeginRound(round, 1).code());
      if (::write(from_child[1], &code, sizeof(code)) != sizeof(code)) ::_exit(4);
    }
    ::_exit(0);
  }
  ::close(to_child[0]);
  ::close(from_child[1]);
  auto write_once = [&]() {
    int code = -1;
    EXPECT_EQ(::write(to_child[1], "w", 1), 1);
    EXPECT_EQ(::read(from_child[0], &code, sizeof(code)), static_cast<ssize_t>(sizeof(code)));
    return static_cast<absl::StatusCode>(code);
  };
  EXPECT_EQ(write_once(), absl::StatusCode::kOk);  // the child leads and writes round 1
  ASSERT_EQ(::kill(pid, SIGSTOP), 0);
  auto lease = Lease();
  ASSERT_NE(lease, nullptr);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  bool acquired = false;
  while (!acquired && std::chrono::steady_clock::now() < deadline) {
    acquired = *lease->TryAcquire("parent", milliseconds(10000));
    if (!acquired) std::this_thread::sleep_for(milliseconds(100));
  }
  ASSERT_TRUE(acquired);
  EXPECT_EQ(lease->epoch(), 2u);
  ASSERT_EQ(::kill(pid, SIGCONT), 0);
  EXPECT_EQ(write_once(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(write_once(), absl::StatusCode::kFailedPrecondition);
  ::close(to_child[1]);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  ::close(from_child[0]);
  auto observer = OpenPostgresStore(ConnInfo());
  ASSERT_TRUE(observer.ok());
  ASSERT_EQ((*observer)->ListRounds()->size(), 1u);  // only the write made while leading
}

}  // namespace
}  // namespace fedlora::coordinator

#endif  // FEDLORA_HAVE_POSTGRESQL
