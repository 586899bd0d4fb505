// OpenSqliteStore: creates or opens a state folder, checks and creates the schema.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "blob_dir.h"
#include "fedlora/common/file_util.h"
#include "fedlora/common/status_macros.h"
#include "sqlite_store_impl.h"

namespace fedlora::coordinator {
namespace {

using internal::SqliteDb;
using internal::Stmt;
using internal::Txn;

// Schema version 1. Rounds count from 1; adapter_versions.round is NULL for the initial
// adapter. Participants are recorded by id without a reference to `devices`, so simulated or
// since-deleted devices can still be accounted for.
constexpr const char* kSchemaV1[] = {
    "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL)",
    "CREATE TABLE devices ("
    " device_id TEXT PRIMARY KEY NOT NULL,"
    " public_key BLOB NOT NULL CHECK (length(public_key) = 32),"
    " enrolled_unix INTEGER NOT NULL,"
    " revoked INTEGER NOT NULL DEFAULT 0,"
    " revoked_reason TEXT NOT NULL DEFAULT '',"
    " revoked_unix INTEGER)",
    "CREATE TABLE enrollment_tokens ("
    " token_sha256 TEXT PRIMARY KEY NOT NULL,"
    " used_by TEXT UNIQUE REFERENCES devices(device_id),"
    " used_unix INTEGER)",
    "CREATE TABLE rounds ("
    " round INTEGER PRIMARY KEY NOT NULL CHECK (round > 0),"
    " state TEXT NOT NULL CHECK (state IN ('running', 'committed', 'aborted')),"
    " phase TEXT NOT NULL DEFAULT '',"
    " abort_reason TEXT NOT NULL DEFAULT '',"
    " started_unix INTEGER NOT NULL,"
    " ended_unix INTEGER NOT NULL DEFAULT 0,"
    " selected INTEGER NOT NULL,"
    " summed INTEGER NOT NULL DEFAULT 0,"
    " charged INTEGER NOT NULL DEFAULT 0,"
    " epsilon_after REAL NOT NULL DEFAULT 0,"
    " CHECK (state <> 'committed' OR charged = 1))",
    "CREATE TABLE privacy_charges ("
    " round INTEGER PRIMARY KEY NOT NULL REFERENCES rounds(round),"
    " mechanism BLOB NOT NULL,"
    " epsilon_after REAL NOT NULL,"
    " unix INTEGER NOT NULL)",
    "CREATE TABLE participants ("
    " round INTEGER NOT NULL REFERENCES privacy_charges(round),"
    " device_id TEXT NOT NULL,"
    " PRIMARY KEY (round, device_id)) WITHOUT ROWID",
    "CREATE INDEX participants_by_device ON participants(device_id)",
    "CREATE TABLE adapter_versions ("
    " version INTEGER PRIMARY KEY NOT NULL CHECK (version > 0),"
    " sha256 TEXT NOT NULL,"
    " round INTEGER UNIQUE REFERENCES rounds(round),"
    " created_unix INTEGER NOT NULL,"
    " bytes INTEGER NOT NULL,"
    " optimizer_sha256 TEXT)",
    "PRAGMA user_version = 1",
};

// Version 1 -> 2: signed adapter releases, their rollout and what devices report running.
// Only adds tables, so a version-1 folder keeps every row it had.
constexpr const char* kMigrateV1ToV2[] = {
    "CREATE TABLE releases ("
    " version INTEGER PRIMARY KEY NOT NULL CHECK (version > 0),"
    " release_id TEXT UNIQUE NOT NULL CHECK (release_id <> ''),"
    " segment TEXT NOT NULL,"
    " base_model_sha256 TEXT NOT NULL,"
    " manifest TEXT NOT NULL,"
    " bundle_sha256 TEXT NOT NULL,"
    " bundle_bytes INTEGER NOT NULL,"
    " published_unix INTEGER NOT NULL,"
    " state TEXT NOT NULL CHECK (state IN ('rolling', 'halted', 'complete', 'rolled_back')),"
    " percent REAL NOT NULL CHECK (percent >= 0 AND percent <= 100),"
    " rollback TEXT NOT NULL DEFAULT '',"
    " CHECK (state <> 'rolled_back' OR rollback <> ''))",
    "CREATE TABLE release_events ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " version INTEGER NOT NULL REFERENCES releases(version),"
    " action TEXT NOT NULL,"
    " percent REAL NOT NULL,"
    " unix INTEGER NOT NULL)",
    "CREATE TABLE device_releases ("
    " device_id TEXT PRIMARY KEY NOT NULL,"
    " running_version INTEGER NOT NULL,"
    " fell_back_from INTEGER NOT NULL,"
    " unix INTEGER NOT NULL) WITHOUT ROWID",
    "PRAGMA user_version = 2",
};
static_assert(kStoreSchemaVersion == 2, "add the migration for the new schema version");

// Creates `dir` (0700) if absent; checks it is a writable folder.
absl::Status PrepareFolder(const std::string& dir) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 && errno != ENOENT) {
    int err = errno;
    std::string msg = absl::StrCat("coordinator store: cannot reach the state folder '", dir,
                                   "': ", std::strerror(err));
    if (err == EACCES || err == EPERM) {
      return absl::PermissionDeniedError(
          absl::StrCat(msg, " (hint: a folder above it is not accessible to this user)"));
    }
    return absl::FailedPreconditionError(absl::StrCat(msg, " (hint: check the path)"));
  }
  if (::stat(dir.c_str(), &st) != 0) {
    std::string parent = dir.substr(0, dir.find_last_of('/'));
    if (dir.find('/') != std::string::npos && !parent.empty()) {
      absl::Status made = MakeDirs(parent);
      if (!made.ok()) {
        return absl::PermissionDeniedError(absl::StrCat(
            "coordinator store: ", made.message(),
            " (hint: create the state folder's parent yourself, or choose a writable place)"));
      }
    }
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      int err = errno;
      std::string msg = absl::StrCat("coordinator store: cannot create the state folder '", dir,
                                     "': ", std::strerror(err));
      if (err == EACCES || err == EPERM || err == EROFS) {
        return absl::PermissionDeniedError(
            absl::StrCat(msg, " (hint: choose a folder you can write, or create it first)"));
      }
      return absl::InternalError(msg);
    }
  } else if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "coordinator store: the state folder '", dir,
        "' exists but is not a folder (hint: pass a folder path; the store creates it)"));
  }
  if (::access(dir.c_str(), R_OK | W_OK | X_OK) != 0) {
    return absl::PermissionDeniedError(absl::StrCat(
        "coordinator store: the state folder '", dir, "' is not writable: ", std::strerror(errno),
        " (hint: fix its owner or mode, or choose another folder)"));
  }
  std::string blobs = dir + "/blobs";
  if (::mkdir(blobs.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::InternalError(
        absl::StrCat("coordinator store: cannot create '", blobs, "': ", std::strerror(errno)));
  }
  if (::stat(blobs.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "coordinator store: '", blobs, "' is not a folder (hint: move that file away)"));
  }
  return internal::FsyncDir(dir);
}

absl::StatusOr<int64_t> QueryInt(SqliteDb& db, const char* sql, absl::string_view op) {
  FEDLORA_ASSIGN_OR_RETURN(Stmt st, Stmt::Prepare(db, sql, op));
  FEDLORA_ASSIGN_OR_RETURN(bool row, st.Step());
  return row ? st.Int(0) : 0;
}

absl::StatusOr<std::string> QueryText(SqliteDb& db, const char* sql, absl::string_view op) {
  FEDLORA_ASSIGN_OR_RETURN(Stmt st, Stmt::Prepare(db, sql, op));
  FEDLORA_ASSIGN_OR_RETURN(bool row, st.Step());
  return row ? st.Bytes(0) : std::string();
}

absl::Status CheckVersion(int64_t version, const std::string& db_path) {
  if (version > kStoreSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "coordinator store: ", db_path, " has schema version ", version,
        ", newer than the version ", kStoreSchemaVersion,
        " this fedlora build understands (hint: run a newer fedlora; an older build must not "
        "write a newer state folder)"));
  }
  if (version < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("coordinator store: ", db_path, " has an invalid schema version ", version,
                     " (hint: it is not a fedlora coordinator database)"));
  }
  return absl::OkStatus();
}

// Creates the schema in an empty database; refuses a database holding something else.
absl::Status CreateSchemaIfEmpty(SqliteDb& db, const std::string& db_path) {
  const char* op = "creating the schema";
  FEDLORA_ASSIGN_OR_RETURN(auto txn, Txn::Begin(db, op));
  // Re-read under the write lock: another process may have created it meanwhile.
  FEDLORA_ASSIGN_OR_RETURN(int64_t version, QueryInt(db, "PRAGMA user_version", op));
  FEDLORA_RETURN_IF_ERROR(CheckVersion(version, db_path));
  if (version != 0) return txn->Commit();
  FEDLORA_ASSIGN_OR_RETURN(int64_t tables, QueryInt(db, "SELECT COUNT(*) FROM sqlite_schema", op));
  if (tables != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "coordinator store: ", db_path,
        " is an SQLite database of something else (it has tables but no fedlora schema "
        "version) (hint: point the coordinator at its own, empty or fedlora, state folder)"));
  }
  for (const char* sql : kSchemaV1) FEDLORA_RETURN_IF_ERROR(db.Exec(sql, op));
  for (const char* sql : kMigrateV1ToV2) FEDLORA_RETURN_IF_ERROR(db.Exec(sql, op));
  return txn->Commit();
}

// Brings an older schema up to kStoreSchemaVersion in one transaction (all steps or none).
absl::Status Migrate(SqliteDb& db, const std::string& db_path) {
  const char* op = "migrating the schema";
  FEDLORA_ASSIGN_OR_RETURN(auto txn, Txn::Begin(db, op));
  FEDLORA_ASSIGN_OR_RETURN(int64_t version, QueryInt(db, "PRAGMA user_version", op));
  FEDLORA_RETURN_IF_ERROR(CheckVersion(version, db_path));
  if (version == 1) {
    for (const char* sql : kMigrateV1ToV2) FEDLORA_RETURN_IF_ERROR(db.Exec(sql, op));
  }
  return txn->Commit();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& dir_in) {
  if (dir_in.empty()) {
    return absl::InvalidArgumentError("coordinator store: empty state folder path");
  }
  std::string dir = dir_in;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  FEDLORA_RETURN_IF_ERROR(PrepareFolder(dir));
  const std::string db_path = dir + "/coordinator.db";
  FEDLORA_ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db, SqliteDb::Open(db_path, dir));

  // The first read touches the file: a file that is not a database fails here (DATA_LOSS).
  FEDLORA_ASSIGN_OR_RETURN(int64_t version,
                           QueryInt(*db, "PRAGMA user_version", "reading the schema version"));
  FEDLORA_RETURN_IF_ERROR(CheckVersion(version, db_path));
  FEDLORA_ASSIGN_OR_RETURN(
      std::string mode, QueryText(*db, "PRAGMA journal_mode = WAL", "switching to WAL journaling"));
  if (mode != "wal") {
    return absl::FailedPreconditionError(absl::StrCat(
        "coordinator store: ", db_path, " cannot use WAL journaling (journal mode is '", mode,
        "') (hint: put the state folder on a local file system, not a network share)"));
  }
  FEDLORA_RETURN_IF_ERROR(db->Exec("PRAGMA synchronous = FULL", "setting synchronous=FULL"));
  FEDLORA_RETURN_IF_ERROR(db->Exec("PRAGMA foreign_keys = ON", "enabling foreign keys"));
  FEDLORA_RETURN_IF_ERROR(CreateSchemaIfEmpty(*db, db_path));
  FEDLORA_RETURN_IF_ERROR(Migrate(*db, db_path));
  // Catches damage inside the file early (cheap: the coordinator database is small).
  FEDLORA_ASSIGN_OR_RETURN(std::string check,
                           QueryText(*db, "PRAGMA quick_check", "checking database integrity"));
  if (check != "ok") {
    return absl::DataLossError(absl::StrCat(
        "coordinator store: ", db_path, " failed its integrity check (", check,
        ") (hint: restore the state folder from a backup; keep this one for inspection)"));
  }
  // The read connection (sqlite_store_impl.h): opened once the schema exists; it never writes.
  FEDLORA_ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> reader, SqliteDb::Open(db_path, dir));
  FEDLORA_RETURN_IF_ERROR(reader->Exec("PRAGMA query_only = ON", "opening the read connection"));
  return std::unique_ptr<Store>(new internal::SqliteStore(dir, std::move(db), std::move(reader)));
}

}  // namespace fedlora::coordinator
