// PgConn, PgResult, PgTxn: libpq with parameterised queries and meaningful status codes.
#include "pg_conn.h"

#include <cstdlib>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "fedlora/common/status_macros.h"

namespace fedlora::coordinator::internal {
namespace {

std::string Trimmed(const char* s) {
  return std::string(absl::StripTrailingAsciiWhitespace(s ? s : ""));
}

// "host=H port=P dbname=D user=U" of a connection object (never the password).
std::string Where(const PGconn* c) {
  if (c == nullptr) return "PostgreSQL";
  const char* host = PQhost(c);
  const char* port = PQport(c);
  const char* db = PQdb(c);
  return absl::StrCat("PostgreSQL at host=", host ? host : "", " port=", port ? port : "",
                      " dbname=", db ? db : "");
}

constexpr char kReachHint[] =
    "(hint: check that the PostgreSQL server is running and reachable from this host; the "
    "next call reconnects)";

}  // namespace

PgParam PgParam::Int(int64_t v) { return Text(absl::StrCat(v)); }
PgParam PgParam::Double(double v) { return Text(absl::StrFormat("%.17g", v)); }

std::string PgResult::Text(int row, int col) const {
  return std::string(PQgetvalue(r_.get(), row, col),
                     static_cast<size_t>(PQgetlength(r_.get(), row, col)));
}
int64_t PgResult::Int(int row, int col) const {
  return IsNull(row, col) ? 0 : std::strtoll(PQgetvalue(r_.get(), row, col), nullptr, 10);
}
double PgResult::Double(int row, int col) const {
  return IsNull(row, col) ? 0 : std::strtod(PQgetvalue(r_.get(), row, col), nullptr);
}
bool PgResult::Bool(int row, int col) const {
  return !IsNull(row, col) && PQgetvalue(r_.get(), row, col)[0] == 't';
}
std::string PgResult::Bytes(int row, int col) const {
  if (IsNull(row, col)) return "";
  if (PQfformat(r_.get(), col) == 1) return Text(row, col);  // binary: the raw bytes
  size_t len = 0;
  unsigned char* raw = PQunescapeBytea(
      reinterpret_cast<const unsigned char*>(PQgetvalue(r_.get(), row, col)), &len);
  if (raw == nullptr) return "";
  std::string out(reinterpret_cast<const char*>(raw), len);
  PQfreemem(raw);
  return out;
}
int64_t PgResult::Affected() const {
  const char* n = PQcmdTuples(r_.get());
  return n && *n ? std::strtoll(n, nullptr, 10) : 0;
}

absl::StatusOr<std::unique_ptr<PgConn>> PgConn::Connect(const std::string& conninfo,
                                                        Settings settings) {
  PGconn* c = PQconnectdb(conninfo.c_str());
  if (c == nullptr) {
    return absl::ResourceExhaustedError("coordinator store: libpq could not allocate a connection");
  }
  std::unique_ptr<PgConn> conn(new PgConn(c, Where(c), std::move(settings)));
  if (PQstatus(c) != CONNECTION_OK) {
    std::string msg = Trimmed(PQerrorMessage(c));
    std::string head = absl::StrCat("coordinator store: cannot connect to ", conn->where(), ": ",
                                     msg);
    if (absl::StrContains(msg, "does not exist") && absl::StrContains(msg, "database")) {
      return absl::FailedPreconditionError(absl::StrCat(
          head, " (hint: create the database first, e.g. `createdb NAME`, or fix dbname)"));
    }
    if (absl::StrContains(msg, "authentication failed") || absl::StrContains(msg, "pg_hba.conf") ||
        absl::StrContains(msg, "role")) {
      return absl::PermissionDeniedError(absl::StrCat(
          head, " (hint: check user and password in the connection string, and the server's "
                "pg_hba.conf)"));
    }
    if (absl::StrContains(msg, "invalid") || absl::StrContains(msg, "missing \"=\"")) {
      return absl::InvalidArgumentError(absl::StrCat(
          head, " (hint: pass a libpq connection string, e.g. \"host=/run/postgresql "
                "dbname=fedlora\" or postgresql://user@host/dbname)"));
    }
    return absl::UnavailableError(absl::StrCat(head, " ", kReachHint));
  }
  FEDLORA_RETURN_IF_ERROR(conn->Configure());
  return conn;
}

PgConn::~PgConn() { PQfinish(c_); }

absl::Status PgConn::Configure() {
  const char* op = "configuring the session";
  FEDLORA_RETURN_IF_ERROR(Exec("SET TIME ZONE 'UTC'", op).status());
  for (const auto& [name, value] : settings_) {
    FEDLORA_RETURN_IF_ERROR(Exec("SELECT set_config($1, $2, false)",
                                 {PgParam::Text(name), PgParam::Text(value)}, op)
                                .status());
  }
  return absl::OkStatus();
}

absl::Status PgConn::EnsureConnected() {
  if (PQstatus(c_) == CONNECTION_OK || in_txn_) return absl::OkStatus();
  PQreset(c_);
  if (PQstatus(c_) != CONNECTION_OK) {
    return absl::UnavailableError(absl::StrCat("coordinator store: cannot reconnect to ", where_,
                                               ": ", Trimmed(PQerrorMessage(c_)), " ",
                                               kReachHint));
  }
  return Configure();
}

absl::StatusOr<PgResult> PgConn::Exec(const char* sql, const std::vector<PgParam>& params,
                                      absl::string_view op, bool binary_result) {
  std::vector<const char*> values(params.size());
  std::vector<int> lengths(params.size()), formats(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    // A text parameter travels as a C string: an embedded NUL would cut it short silently.
    if (!params[i].binary && params[i].value.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "coordinator store: ", op, ": text value ", i + 1,
          " contains a NUL byte, which PostgreSQL text cannot hold (hint: ids, names and JSON "
          "must be text)"));
    }
    values[i] = params[i].null ? nullptr : params[i].value.data();
    lengths[i] = static_cast<int>(params[i].value.size());
    formats[i] = params[i].binary ? 1 : 0;
  }
  PgResult res(PQexecParams(c_, sql, static_cast<int>(params.size()), nullptr, values.data(),
                            lengths.data(), formats.data(), binary_result ? 1 : 0));
  const ExecStatusType st = res.get() ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
  if (res.get() != nullptr && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)) return res;
  return ErrorOf(res.get(), op);
}

absl::StatusOr<PgResult> PgConn::ExecRetrying(const char* sql,
                                              const std::vector<PgParam>& params,
                                              absl::string_view op, bool binary_result) {
  absl::StatusOr<PgResult> r = Exec(sql, params, op, binary_result);
  if (r.ok() || in_txn_ || !absl::IsUnavailable(r.status()) || PQstatus(c_) == CONNECTION_OK) {
    return r;
  }
  FEDLORA_RETURN_IF_ERROR(EnsureConnected());
  return Exec(sql, params, op, binary_result);
}

absl::Status PgConn::ErrorOf(const PGresult* r, absl::string_view op) const {
  const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  const std::string code = state ? state : "";
  const std::string msg = Trimmed(r ? PQresultErrorMessage(r) : PQerrorMessage(c_));
  const std::string head = absl::StrCat("coordinator store: ", op, " on ", where_, " failed: ",
                                        msg.empty() ? Trimmed(PQerrorMessage(c_)) : msg);
  if (PQstatus(c_) != CONNECTION_OK || absl::StartsWith(code, "08") ||
      absl::StartsWith(code, "57P")) {
    return absl::UnavailableError(
        absl::StrCat(head, " (the connection was lost or the server is shutting down; the "
                           "transaction was rolled back unless it was committing) ", kReachHint));
  }
  if (code == "23505") {
    return absl::AlreadyExistsError(absl::StrCat(head, " (hint: the row already exists)"));
  }
  if (absl::StartsWith(code, "23")) {
    return absl::FailedPreconditionError(absl::StrCat(
        head, " (hint: the change breaks a rule of the schema; nothing was written)"));
  }
  if (code == "42P07") {
    return absl::FailedPreconditionError(absl::StrCat(
        head, " (hint: the database holds tables of something else; give the coordinator its "
              "own database)"));
  }
  if (code == "40001" || code == "40P01" || code == "55P03") {
    return absl::AbortedError(
        absl::StrCat(head, " (hint: a concurrent transaction conflicted or held a lock; retry "
                           "the call)"));
  }
  if (absl::StartsWith(code, "53")) {
    return absl::ResourceExhaustedError(absl::StrCat(
        head, " (hint: the server is out of disk, memory or connections; free some and retry; "
              "nothing committed was lost)"));
  }
  if (code == "XX001" || code == "XX002") {
    return absl::DataLossError(absl::StrCat(
        head, " (hint: the database is corrupted; restore it from a backup)"));
  }
  if (absl::StartsWith(code, "28") || code == "42501") {
    return absl::PermissionDeniedError(absl::StrCat(
        head, " (hint: grant the coordinator's role the rights on its database)"));
  }
  if (absl::StartsWith(code, "22")) {
    return absl::InvalidArgumentError(
        absl::StrCat(head, " (hint: a value is not valid for its column, e.g. text that is "
                           "not UTF-8)"));
  }
  return absl::InternalError(absl::StrCat(head, code.empty() ? "" : " [SQLSTATE " + code + "]"));
}

// ---------------------------------------------------------------- transactions

absl::StatusOr<std::unique_ptr<PgTxn>> PgTxn::Begin(PgConn& conn, absl::string_view op,
                                                    const std::optional<StoreFence>& fence) {
  FEDLORA_RETURN_IF_ERROR(conn.EnsureConnected());
  FEDLORA_RETURN_IF_ERROR(conn.ExecRetrying("BEGIN", {}, op).status());
  std::unique_ptr<PgTxn> txn(new PgTxn(&conn, std::string(op)));
  conn.in_txn_ = true;
  FEDLORA_RETURN_IF_ERROR(
      conn.Exec("SELECT pg_advisory_xact_lock($1)", {PgParam::Int(kStoreWriteLockKey)}, op)
          .status());
  if (fence.has_value()) FEDLORA_RETURN_IF_ERROR(CheckFence(conn, *fence, op));
  return txn;
}

PgTxn::~PgTxn() {
  if (!done_ && PQstatus(conn_->c_) == CONNECTION_OK) (void)conn_->Exec("ROLLBACK", op_);
  conn_->in_txn_ = false;
}

absl::Status PgTxn::Commit() {
  done_ = true;
  absl::Status s = conn_->Exec("COMMIT", op_).status();
  conn_->in_txn_ = false;
  if (absl::IsUnavailable(s)) {
    return absl::UnavailableError(absl::StrCat(
        s.message(), " (the commit's outcome is unknown: read the state back before retrying)"));
  }
  return s;
}

absl::Status CheckFence(PgConn& conn, const StoreFence& fence, absl::string_view op) {
  FEDLORA_ASSIGN_OR_RETURN(
      PgResult r, conn.Exec("SELECT epoch, holder FROM leader_leases WHERE population = $1 "
                            "FOR SHARE",
                            {PgParam::Text(fence.population)}, op));
  if (r.rows() == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "fenced: ", op, " refused: population '", fence.population,
        "' has no leader lease (hint: acquire the lease with LeaderLease::TryAcquire first)"));
  }
  const uint64_t epoch = static_cast<uint64_t>(r.Int(0, 0));
  if (epoch != fence.epoch) {
    return absl::FailedPreconditionError(absl::StrCat(
        "fenced: this process's leadership (epoch ", fence.epoch, ") was taken over by epoch ",
        epoch, " (holder '", r.Text(0, 1), "') of population '", fence.population, "'; ", op,
        " was refused and nothing was written; step down"));
  }
  return absl::OkStatus();
}

}  // namespace fedlora::coordinator::internal
