#include "sqlite_db.h"

#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"

namespace fedlora::coordinator::internal {
namespace {

constexpr int kBusyTimeoutMs = 10000;

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteDb>> SqliteDb::Open(const std::string& path,
                                                         const std::string& state_dir) {
  sqlite3* db = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  std::unique_ptr<SqliteDb> out(new SqliteDb(db, state_dir));
  if (db == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("coordinator store: opening '", path, "': out of memory"));
  }
  sqlite3_extended_result_codes(db, 1);
  if (rc != SQLITE_OK) return out->Error(rc, absl::StrCat("opening '", path, "'"));
  sqlite3_busy_timeout(db, kBusyTimeoutMs);
  return out;
}

SqliteDb::~SqliteDb() {
  if (db_ != nullptr) sqlite3_close_v2(db_);
}

absl::Status SqliteDb::Error(int rc, absl::string_view op) const {
  const int primary = rc & 0xff;
  const std::string detail = absl::StrCat(db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc),
                                          " (sqlite code ", rc, ")");
  const std::string what = absl::StrCat("coordinator store: ", op, " failed: ", detail);
  const bool enospc =
      (primary == SQLITE_IOERR && db_ != nullptr && sqlite3_system_errno(db_) == ENOSPC);
  if (primary == SQLITE_FULL || enospc) {
    return absl::ResourceExhaustedError(absl::StrCat(what, ": disk full: free space under ",
                                                     state_dir_,
                                                     " and restart; nothing committed was lost"));
  }
  if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB) {
    return absl::DataLossError(absl::StrCat(
        what, ": ", state_dir_,
        "/coordinator.db is corrupted or not an SQLite database (hint: restore the state folder "
        "from a backup, or start a new run with another state folder; keep this one for "
        "inspection)"));
  }
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
    return absl::InternalError(absl::StrCat(
        what,
        " (hint: another process holds the database lock; only one coordinator may use "
        "the state folder ",
        state_dir_, ")"));
  }
  if (primary == SQLITE_READONLY || primary == SQLITE_PERM || primary == SQLITE_CANTOPEN) {
    return absl::PermissionDeniedError(
        absl::StrCat(what, " (hint: the coordinator needs read-write access to ", state_dir_,
                     " and the files in it)"));
  }
  return absl::InternalError(what);
}

absl::Status SqliteDb::Exec(const char* sql, absl::string_view op) {
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return Error(rc, op);
  return absl::OkStatus();
}

absl::StatusOr<Stmt> Stmt::Prepare(SqliteDb& db, const char* sql, absl::string_view op) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db.handle(), sql, -1, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    if (stmt != nullptr) sqlite3_finalize(stmt);
    return db.Error(rc, op);
  }
  return Stmt(&db, stmt, std::string(op));
}

Stmt::Stmt(Stmt&& other) noexcept
    : db_(other.db_), stmt_(other.stmt_), op_(std::move(other.op_)), bind_rc_(other.bind_rc_) {
  other.stmt_ = nullptr;
}

Stmt::~Stmt() {
  if (stmt_ != nullptr) sqlite3_finalize(stmt_);
}

void Stmt::NoteBind(int rc) {
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
}

Stmt& Stmt::BindInt(int i, int64_t v) {
  NoteBind(sqlite3_bind_int64(stmt_, i, v));
  return *this;
}

Stmt& Stmt::BindDouble(int i, double v) {
  NoteBind(sqlite3_bind_double(stmt_, i, v));
  return *this;
}

Stmt& Stmt::BindText(int i, absl::string_view v) {
  NoteBind(sqlite3_bind_text64(stmt_, i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
  return *this;
}

Stmt& Stmt::BindBlob(int i, absl::string_view v) {
  // A zero-length blob with a null pointer would bind NULL; use a non-null pointer.
  NoteBind(sqlite3_bind_blob64(stmt_, i, v.empty() ? "" : v.data(), v.size(), SQLITE_TRANSIENT));
  return *this;
}

Stmt& Stmt::BindNull(int i) {
  NoteBind(sqlite3_bind_null(stmt_, i));
  return *this;
}

Stmt& Stmt::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  bind_rc_ = SQLITE_OK;
  return *this;
}

absl::StatusOr<bool> Stmt::Step() {
  if (bind_rc_ != SQLITE_OK) return db_->Error(bind_rc_, op_);
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return db_->Error(rc, op_);
}

absl::Status Stmt::Run() {
  for (;;) {
    absl::StatusOr<bool> row = Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
  }
}

int Stmt::Changes() const { return sqlite3_changes(db_->handle()); }

int64_t Stmt::Int(int col) const { return sqlite3_column_int64(stmt_, col); }

double Stmt::Double(int col) const { return sqlite3_column_double(stmt_, col); }

std::string Stmt::Bytes(int col) const {
  const void* p = sqlite3_column_blob(stmt_, col);
  int n = sqlite3_column_bytes(stmt_, col);
  if (p == nullptr || n <= 0) return std::string();
  return std::string(static_cast<const char*>(p), static_cast<size_t>(n));
}

bool Stmt::IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

absl::StatusOr<std::unique_ptr<Txn>> Txn::Begin(SqliteDb& db, absl::string_view op) {
  absl::Status s = db.Exec("BEGIN IMMEDIATE", absl::StrCat(op, " (begin transaction)"));
  if (!s.ok()) return s;
  return std::unique_ptr<Txn>(new Txn(&db, std::string(op)));
}

Txn::~Txn() {
  // A failed COMMIT may leave the transaction open; roll it back so the connection is usable.
  if (!sqlite3_get_autocommit(db_->handle())) {
    sqlite3_exec(db_->handle(), "ROLLBACK", nullptr, nullptr, nullptr);
  }
}

absl::Status Txn::Commit() { return db_->Exec("COMMIT", absl::StrCat(op_, " (commit)")); }

}  // namespace fedlora::coordinator::internal
