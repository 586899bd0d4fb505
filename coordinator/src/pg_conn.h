// Internal: a thin RAII layer over libpq for the PostgreSQL store (pg_store_impl.h) and the
// leader lease (leader_lease.h). Parameterised queries only (PQexecParams: values never enter
// the SQL text); libpq and server failures become absl statuses that name the operation and
// say what to do:
//   UNAVAILABLE          the server cannot be reached, or the connection was lost / the server
//                        is shutting down (SQLSTATE classes 08, 57P); the next call reconnects
//   ALREADY_EXISTS       unique violation (23505)
//   FAILED_PRECONDITION  other integrity violations (23xxx)
//   ABORTED              serialization failure, deadlock, lock timeout (40001, 40P01, 55P03):
//                        retry the call
//   RESOURCE_EXHAUSTED   disk full, out of memory or connections (53xxx)
//   DATA_LOSS            data or index corrupted (XX001, XX002)
//   PERMISSION_DENIED    authentication or privileges (28xxx, 42501)
//   INTERNAL             anything else
#ifndef FEDLORA_COORDINATOR_SRC_PG_CONN_H_
#define FEDLORA_COORDINATOR_SRC_PG_CONN_H_

#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "fedlora/coordinator/store.h"

namespace fedlora::coordinator::internal {

// One query parameter: text (ints and doubles are sent as their decimal text) or binary
// (bytea), or SQL NULL.
struct PgParam {
  std::string value;
  bool binary = false;
  bool null = false;

  static PgParam Text(std::string v) { return {std::move(v), false, false}; }
  static PgParam Bytes(std::string v) { return {std::move(v), true, false}; }
  static PgParam Int(int64_t v);
  static PgParam Double(double v);
  static PgParam Null() { return {"", false, true}; }
};

// A query's result (owns the PGresult).
class PgResult {
 public:
  explicit PgResult(PGresult* r) : r_(r, &PQclear) {}
  int rows() const { return PQntuples(r_.get()); }
  bool IsNull(int row, int col) const { return PQgetisnull(r_.get(), row, col) != 0; }
  // Text-format columns.
  std::string Text(int row, int col) const;
  int64_t Int(int row, int col) const;
  double Double(int row, int col) const;
  bool Bool(int row, int col) const;  // 't' / 'f'
  // A bytea column of a text-format result (the server's hex form, decoded); of a
  // binary-format result, the raw bytes.
  std::string Bytes(int row, int col) const;
  // Rows affected by an INSERT/UPDATE/DELETE.
  int64_t Affected() const;
  const PGresult* get() const { return r_.get(); }

 private:
  std::unique_ptr<PGresult, decltype(&PQclear)> r_;
};

class PgConn {
 public:
  // Connects with libpq's `conninfo` (key=value pairs or a postgresql:// URI). The session
  // runs in UTC, with the server `settings` given (set_config, again after a reconnect), e.g.
  // idle_in_transaction_session_timeout (the server ends a session that stays inside a
  // transaction that long: a paused process's locks go away) or lock_timeout.
  using Settings = std::vector<std::pair<std::string, std::string>>;
  static absl::StatusOr<std::unique_ptr<PgConn>> Connect(const std::string& conninfo,
                                                         Settings settings = {});
  ~PgConn();
  PgConn(const PgConn&) = delete;
  PgConn& operator=(const PgConn&) = delete;

  // Reconnects when the connection was lost (call before each operation); UNAVAILABLE while
  // the server cannot be reached.
  absl::Status EnsureConnected();

  // Runs `sql` with $1.. bound to `params`; `op` names the operation in errors ("charging a
  // round"). `binary_result` asks for binary-format columns (for bytea reads).
  absl::StatusOr<PgResult> Exec(const char* sql, const std::vector<PgParam>& params,
                                absl::string_view op, bool binary_result = false);
  absl::StatusOr<PgResult> Exec(const char* sql, absl::string_view op) {
    return Exec(sql, {}, op);
  }
  // Exec for a statement that may run twice (a read, or BEGIN): when it fails because the
  // connection had been lost before it (e.g. the server restarted since the last call), it
  // reconnects and runs it once more, so the first call after a restart succeeds.
  // Never retries inside a transaction (PgTxn): the rest of it would run outside one.
  absl::StatusOr<PgResult> ExecRetrying(const char* sql, const std::vector<PgParam>& params,
                                        absl::string_view op, bool binary_result = false);
  absl::StatusOr<PgResult> ExecRetrying(const char* sql, absl::string_view op) {
    return ExecRetrying(sql, {}, op);
  }

  // The libpq conninfo with any password removed (for messages).
  const std::string& where() const { return where_; }

 private:
  PgConn(PGconn* c, std::string where, Settings settings)
      : c_(c), where_(std::move(where)), settings_(std::move(settings)) {}
  friend class PgTxn;
  absl::Status Configure();
  absl::Status ErrorOf(const PGresult* r, absl::string_view op) const;

  PGconn* c_;
  const std::string where_;
  const Settings settings_;
  bool in_txn_ = false;  // a PgTxn is open: never reconnect (nor retry) under it
};

// The advisory-lock key every writing transaction of the store takes (pg_advisory_xact_lock):
// writes to one database are serialized as SQLite's BEGIN IMMEDIATE serializes them, across
// every process, and the lock goes away with the transaction.
inline constexpr int64_t kStoreWriteLockKey = 0x6665646c6f7261;  // "fedlora"

// A write transaction: BEGIN, the store's write lock, and (when `fence` is set) the fencing
// check of leader_lease.h; rolled back on destruction unless Commit() succeeded.
class PgTxn {
 public:
  static absl::StatusOr<std::unique_ptr<PgTxn>> Begin(PgConn& conn, absl::string_view op,
                                                      const std::optional<StoreFence>& fence);
  ~PgTxn();
  // UNAVAILABLE when the connection is lost during COMMIT: the outcome is then unknown (the
  // message says so: read the state back before retrying).
  absl::Status Commit();

 private:
  PgTxn(PgConn* conn, std::string op) : conn_(conn), op_(std::move(op)) {}
  PgConn* conn_;
  std::string op_;
  bool done_ = false;
};

// Checks, inside the caller's open transaction, that the lease of `fence.population` still
// carries `fence.epoch`, and locks the lease row (FOR SHARE) until the transaction ends, so no
// takeover can commit while this transaction is open. FAILED_PRECONDITION "fenced: ..." when
// another leader took over.
absl::Status CheckFence(PgConn& conn, const StoreFence& fence, absl::string_view op);

// Creates the schema (kStoreSchemaVersion) if absent, in one transaction; refuses a database
// written by a newer schema (FAILED_PRECONDITION). Idempotent, safe from many processes.
absl::Status EnsurePgSchema(PgConn& conn);

}  // namespace fedlora::coordinator::internal

#endif  // FEDLORA_COORDINATOR_SRC_PG_CONN_H_
