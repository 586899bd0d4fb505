// EnsurePgSchema: the PostgreSQL schema of the coordinator store, created idempotently.
// The tables mirror sqlite_store_open.cc's (same names and meaning, schema version 2), plus
// `blobs` (content-addressed bytea: docs/coordinator.md, "Multi-host (in progress)") and
// `leader_leases` (leader_lease.h), and the operational table `processes` (process_registry.h).
#include "absl/strings/str_cat.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/coordinator/store.h"
#include "pg_conn.h"

namespace fedlora::coordinator::internal {
namespace {

constexpr const char* kSchema[] = {
    "CREATE TABLE fedlora_schema (id INTEGER PRIMARY KEY CHECK (id = 1),"
    " version INTEGER NOT NULL)",
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value BYTEA NOT NULL)",
    "CREATE TABLE devices ("
    " device_id TEXT PRIMARY KEY,"
    " public_key BYTEA NOT NULL CHECK (length(public_key) = 32),"
    " enrolled_unix BIGINT NOT NULL,"
    " revoked BOOLEAN NOT NULL DEFAULT false,"
    " revoked_reason TEXT NOT NULL DEFAULT '',"
    " revoked_unix BIGINT)",
    "CREATE TABLE enrollment_tokens ("
    " token_sha256 TEXT PRIMARY KEY,"
    " used_by TEXT UNIQUE REFERENCES devices(device_id),"
    " used_unix BIGINT)",
    "CREATE TABLE rounds ("
    " round BIGINT PRIMARY KEY CHECK (round > 0),"
    " state TEXT NOT NULL CHECK (state IN ('running', 'committed', 'aborted')),"
    " phase TEXT NOT NULL DEFAULT '',"
    " abort_reason TEXT NOT NULL DEFAULT '',"
    " started_unix BIGINT NOT NULL,"
    " ended_unix BIGINT NOT NULL DEFAULT 0,"
    " selected INTEGER NOT NULL,"
    " summed INTEGER NOT NULL DEFAULT 0,"
    " charged BOOLEAN NOT NULL DEFAULT false,"
    " epsilon_after DOUBLE PRECISION NOT NULL DEFAULT 0,"
    " CHECK (state <> 'committed' OR charged))",
    "CREATE TABLE privacy_charges ("
    " round BIGINT PRIMARY KEY REFERENCES rounds(round),"
    " mechanism BYTEA NOT NULL,"
    " epsilon_after DOUBLE PRECISION NOT NULL,"
    " unix BIGINT NOT NULL)",
    "CREATE TABLE participants ("
    " round BIGINT NOT NULL REFERENCES privacy_charges(round),"
    " device_id TEXT NOT NULL,"
    " PRIMARY KEY (round, device_id))",
    "CREATE INDEX participants_by_device ON participants(device_id)",
    // Adapter, optimizer-state and release-bundle bytes, named by their SHA-256 (hex). Stored
    // uncompressed (float tensors do not compress, and pglz would only cost CPU).
    "CREATE TABLE blobs (sha256 TEXT PRIMARY KEY, data BYTEA NOT NULL)",
    "ALTER TABLE blobs ALTER COLUMN data SET STORAGE EXTERNAL",
    "CREATE TABLE adapter_versions ("
    " version BIGINT PRIMARY KEY CHECK (version > 0),"
    " sha256 TEXT NOT NULL REFERENCES blobs(sha256),"
    " round BIGINT UNIQUE REFERENCES rounds(round),"
    " created_unix BIGINT NOT NULL,"
    " bytes BIGINT NOT NULL,"
    " optimizer_sha256 TEXT REFERENCES blobs(sha256))",
    "CREATE TABLE releases ("
    " version BIGINT PRIMARY KEY CHECK (version > 0),"
    " release_id TEXT UNIQUE NOT NULL CHECK (release_id <> ''),"
    " segment TEXT NOT NULL,"
    " base_model_sha256 TEXT NOT NULL,"
    " manifest TEXT NOT NULL,"
    " bundle_sha256 TEXT NOT NULL REFERENCES blobs(sha256),"
    " bundle_bytes BIGINT NOT NULL,"
    " published_unix BIGINT NOT NULL,"
    " state TEXT NOT NULL CHECK (state IN ('rolling', 'halted', 'complete', 'rolled_back')),"
    " percent DOUBLE PRECISION NOT NULL CHECK (percent >= 0 AND percent <= 100),"
    " rollback TEXT NOT NULL DEFAULT '',"
    " CHECK (state <> 'rolled_back' OR rollback <> ''))",
    "CREATE TABLE release_events ("
    " id BIGSERIAL PRIMARY KEY,"
    " version BIGINT NOT NULL REFERENCES releases(version),"
    " action TEXT NOT NULL,"
    " percent DOUBLE PRECISION NOT NULL,"
    " unix BIGINT NOT NULL)",
    "CREATE TABLE device_releases ("
    " device_id TEXT PRIMARY KEY,"
    " running_version BIGINT NOT NULL,"
    " fell_back_from BIGINT NOT NULL,"
    " unix BIGINT NOT NULL)",
    // One row per population: who leads, under which epoch, until when (database clock).
    "CREATE TABLE leader_leases ("
    " population TEXT PRIMARY KEY,"
    " holder TEXT NOT NULL,"
    " epoch BIGINT NOT NULL CHECK (epoch > 0),"
    " acquired_at TIMESTAMPTZ NOT NULL,"
    " expires_at TIMESTAMPTZ NOT NULL)",
};
static_assert(kStoreSchemaVersion == 2, "add the PostgreSQL migration for the new version");

// The process registry (process_registry.h): who runs, in which role, heartbeat on the database
// clock. Operational, not part of the store's versioned contract (SQLite has no counterpart and
// the rows rebuild themselves within a heartbeat), so it is created whenever absent, in the
// same locked transaction, by any build that knows it: a database made before it gains it on
// the next open, without a schema version of its own.
constexpr const char* kProcessesTable[] = {
    "CREATE TABLE processes ("
    " id TEXT PRIMARY KEY CHECK (id <> ''),"
    " role TEXT NOT NULL CHECK (role IN ('leader', 'standby', 'edge', 'aggregator')),"
    " address TEXT NOT NULL,"
    " metrics_address TEXT NOT NULL,"
    " host TEXT NOT NULL,"
    " pid BIGINT NOT NULL,"
    " version TEXT NOT NULL,"
    " started TIMESTAMPTZ NOT NULL,"
    " heartbeat TIMESTAMPTZ NOT NULL)",
    "CREATE INDEX processes_by_role ON processes(role, heartbeat)",
};

absl::Status EnsureProcessesTable(PgConn& conn, const char* op) {
  FEDLORA_ASSIGN_OR_RETURN(PgResult exists,
                           conn.Exec("SELECT to_regclass('processes') IS NOT NULL", op));
  if (exists.Bool(0, 0)) return absl::OkStatus();
  for (const char* sql : kProcessesTable) FEDLORA_RETURN_IF_ERROR(conn.Exec(sql, op).status());
  return absl::OkStatus();
}

}  // namespace

absl::Status EnsurePgSchema(PgConn& conn) {
  const char* op = "creating the schema";
  // The store's write lock also serializes schema creation between processes.
  FEDLORA_ASSIGN_OR_RETURN(auto txn, PgTxn::Begin(conn, op, std::nullopt));
  FEDLORA_ASSIGN_OR_RETURN(
      PgResult exists, conn.Exec("SELECT to_regclass('fedlora_schema') IS NOT NULL", op));
  if (exists.Bool(0, 0)) {
    FEDLORA_ASSIGN_OR_RETURN(PgResult v,
                             conn.Exec("SELECT version FROM fedlora_schema WHERE id = 1", op));
    const int64_t version = v.rows() ? v.Int(0, 0) : 0;
    if (version > kStoreSchemaVersion || version < 2) {
      return absl::FailedPreconditionError(absl::StrCat(
          "coordinator store: ", conn.where(), " has fedlora schema version ", version,
          version > kStoreSchemaVersion
              ? absl::StrCat(", newer than the version ", kStoreSchemaVersion,
                             " this fedlora build understands (hint: run a newer fedlora; an "
                             "older build must not write a newer database)")
              : " (hint: it is not a fedlora coordinator database; use an empty one)"));
    }
    FEDLORA_RETURN_IF_ERROR(EnsureProcessesTable(conn, op));
    return txn->Commit();
  }
  for (const char* sql : kSchema) FEDLORA_RETURN_IF_ERROR(conn.Exec(sql, op).status());
  FEDLORA_RETURN_IF_ERROR(conn.Exec("INSERT INTO fedlora_schema(id, version) VALUES (1, $1)",
                                    {PgParam::Int(kStoreSchemaVersion)}, op)
                              .status());
  FEDLORA_RETURN_IF_ERROR(EnsureProcessesTable(conn, op));
  return txn->Commit();
}

}  // namespace fedlora::coordinator::internal
