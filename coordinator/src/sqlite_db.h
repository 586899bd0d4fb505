// Internal: a thin RAII layer over the SQLite C API for the coordinator store. Prepared
// statements with bound parameters only; SQLite result codes become absl statuses that name
// the operation and, for the common failures (disk full, corruption, locking), give a hint.
#ifndef FEDLORA_COORDINATOR_SRC_SQLITE_DB_H_
#define FEDLORA_COORDINATOR_SRC_SQLITE_DB_H_

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fedlora::coordinator::internal {

class SqliteDb {
 public:
  // Opens (creating if absent) the database file at `path`, read-write, with extended result
  // codes and a busy timeout. `state_dir` is only used in error hints.
  static absl::StatusOr<std::unique_ptr<SqliteDb>> Open(const std::string& path,
                                                        const std::string& state_dir);
  ~SqliteDb();
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  sqlite3* handle() const { return db_; }
  // The status for SQLite result `rc` from operation `op` (e.g. "enrolling a device"):
  // RESOURCE_EXHAUSTED for a full disk, DATA_LOSS for corruption, INTERNAL otherwise.
  absl::Status Error(int rc, absl::string_view op) const;
  // Runs constant SQL text (no data in it) that returns no rows of interest.
  absl::Status Exec(const char* sql, absl::string_view op);

 private:
  SqliteDb(sqlite3* db, std::string state_dir) : db_(db), state_dir_(std::move(state_dir)) {}
  sqlite3* db_;
  std::string state_dir_;
};

// One prepared statement. Bind* are 1-based and chainable; a binding error is reported by the
// next Step/Run.
class Stmt {
 public:
  // Prepares constant SQL text `sql`; INTERNAL (naming `op`) if it does not compile.
  static absl::StatusOr<Stmt> Prepare(SqliteDb& db, const char* sql, absl::string_view op);
  Stmt(Stmt&& other) noexcept;
  Stmt& operator=(Stmt&&) = delete;
  ~Stmt();

  Stmt& BindInt(int i, int64_t v);
  Stmt& BindDouble(int i, double v);
  Stmt& BindText(int i, absl::string_view v);
  Stmt& BindBlob(int i, absl::string_view v);
  Stmt& BindNull(int i);
  // Rewinds the statement and clears its bindings, to run it again.
  Stmt& Reset();

  // Advances: true when a row is available, false when done.
  absl::StatusOr<bool> Step();
  // Steps to completion, expecting no rows (INSERT/UPDATE/DELETE).
  absl::Status Run();
  // Rows changed by the last Run.
  int Changes() const;

  int64_t Int(int col) const;
  double Double(int col) const;
  std::string Bytes(int col) const;  // TEXT or BLOB; "" for NULL
  bool IsNull(int col) const;

 private:
  Stmt(SqliteDb* db, sqlite3_stmt* stmt, std::string op)
      : db_(db), stmt_(stmt), op_(std::move(op)) {}
  void NoteBind(int rc);
  SqliteDb* db_;
  sqlite3_stmt* stmt_;
  std::string op_;
  int bind_rc_ = SQLITE_OK;
};

// A `BEGIN IMMEDIATE` transaction; rolled back on destruction unless Commit() succeeded.
class Txn {
 public:
  static absl::StatusOr<std::unique_ptr<Txn>> Begin(SqliteDb& db, absl::string_view op);
  ~Txn();
  absl::Status Commit();

 private:
  Txn(SqliteDb* db, std::string op) : db_(db), op_(std::move(op)) {}
  SqliteDb* db_;
  std::string op_;
};

}  // namespace fedlora::coordinator::internal

#endif  // FEDLORA_COORDINATOR_SRC_SQLITE_DB_H_
