// The coordinator's persistent state: enrolled devices, rounds, privacy charges, adapter
// versions and small config values. `Store` is the interface with two implementations:
// `OpenPostgresStore` (multi-host mode, below) and `OpenSqliteStore`, the SQLite one over a
// state folder DIR:
//   DIR/coordinator.db   SQLite, WAL journal, synchronous=FULL, foreign keys on.
//   DIR/blobs/<sha256>   adapter (and optimizer-state) blobs, content-addressed, written with
//                        fsync + atomic rename before the row that references them commits.
// Every mutating call is one `BEGIN IMMEDIATE` transaction: after a crash the store holds
// either all of a call's effects or none of them. All methods are thread-safe.
#ifndef FEDLORA_COORDINATOR_STORE_H_
#define FEDLORA_COORDINATOR_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace fedlora::coordinator {

struct DeviceRecord {
  std::string device_id;
  std::string public_key;  // raw Ed25519, 32 bytes
  int64_t enrolled_unix = 0;
  bool revoked = false;
  std::string revoked_reason;
};

struct RoundRecord {
  uint64_t round = 0;
  std::string state;  // "running" | "committed" | "aborted"
  std::string phase;  // last phase entered, free text e.g. "share_keys"
  std::string abort_reason;
  int64_t started_unix = 0, ended_unix = 0;
  int selected = 0;
  int summed = 0;
  bool charged = false;
  double epsilon_after = 0;
};

struct AdapterVersion {
  uint64_t version = 0;
  std::string sha256;  // hex
  uint64_t round = 0;  // 0 = initial
  int64_t created_unix = 0;
  uint64_t bytes = 0;
};

// A signed adapter release the coordinator serves (docs/releases.md, "Rollout"). The bundle
// (fedlora/io/release_bundle.h) is a blob like the adapters. `state`:
//   "rolling"      offered to the devices whose rollout hash falls under `percent`;
//   "halted"       offered to no one new; devices that run it keep it;
//   "complete"     reached 100%: the segment's stable release, offered to every device;
//   "rolled_back"  devices that run it are sent the previous complete release together with
//                  `rollback_json`, the operator's signed rollback instruction.
struct ReleaseRecord {
  uint64_t version = 0;
  std::string release_id;
  std::string segment = "global";
  std::string base_model_sha256;
  std::string manifest_json;  // the signed manifest, as published
  std::string bundle_sha256;  // hex; the blob holding the bundle
  uint64_t bundle_bytes = 0;
  int64_t published_unix = 0;
  std::string state = "rolling";
  double percent = 0;         // 0..100
  std::string rollback_json;  // set with state "rolled_back"
};

// One operator action on a release, kept for the record ("publish", "promote", "halt",
// "rollback").
struct ReleaseEvent {
  uint64_t version = 0;
  std::string action;
  double percent = 0;
  int64_t unix = 0;
};

// What a device last reported about releases (versions only: nothing else leaves a device).
struct DeviceReleaseReport {
  std::string device_id;
  uint64_t running_version = 0;  // 0 = none
  uint64_t fell_back_from = 0;   // a version its health gate refused (0 = none)
  int64_t unix = 0;
};

struct PrivacyCharge {
  uint64_t round = 0;
  std::string mechanism;  // opaque bytes the caller serializes (JSON)
  double epsilon_after = 0;
  int64_t unix = 0;  // 0: the store fills in the current time
};

// Status codes common to every method: INTERNAL for an SQLite or I/O failure (the message
// names the operation), RESOURCE_EXHAUSTED when the disk is full (nothing committed is lost),
// DATA_LOSS when the database is corrupted. Codes specific to a method are listed with it.
// PostgreSQL adds UNAVAILABLE (server unreachable or connection lost: nothing was written,
// except that a lost COMMIT's outcome is unknown; the next call reconnects), ABORTED (a
// conflict: retry) and, with a fence, FAILED_PRECONDITION "fenced: ..." on every write.
class Store {
 public:
  virtual ~Store() = default;

  // ---- Enrolment. Only SHA-256 hex (64 lowercase hex chars) of tokens is stored.
  // Adds unused tokens; a token already present is left as it is (used or not).
  // INVALID_ARGUMENT: a token is not 64 lowercase hex characters (nothing added).
  virtual absl::Status AddEnrollmentTokens(const std::vector<std::string>& token_sha256_hex) = 0;
  // Atomically marks the token used and inserts the device (not revoked; enrolled_unix 0 means
  // now). NOT_FOUND: unknown token; ALREADY_EXISTS: token already used, or device id taken;
  // INVALID_ARGUMENT: malformed token hash, empty device id, public key not 32 bytes.
  virtual absl::Status EnrollDevice(const std::string& token_sha256_hex,
                                    const DeviceRecord& device) = 0;
  // A read only (no write transaction): OK when the token is known and unused. NOT_FOUND:
  // unknown token; ALREADY_EXISTS: already used; INVALID_ARGUMENT: malformed token hash.
  virtual absl::Status CheckTokenUnused(const std::string& token_sha256_hex) const = 0;
  // NOT_FOUND: no such device.
  virtual absl::StatusOr<DeviceRecord> GetDevice(const std::string& device_id) const = 0;
  // All devices, ordered by device id.
  virtual absl::StatusOr<std::vector<DeviceRecord>> ListDevices() const = 0;
  // Marks the device revoked. Revoking a revoked device is OK and keeps the first reason.
  // NOT_FOUND: no such device.
  virtual absl::Status RevokeDevice(const std::string& device_id, const std::string& reason) = 0;
  virtual absl::StatusOr<int> CountUnusedTokens() const = 0;

  // ---- Rounds. A round is "running" from BeginRound until CommitRound or AbortRound.
  // INVALID_ARGUMENT: round 0 (reserved for the initial adapter) or selected < 0;
  // ALREADY_EXISTS: the round is already recorded (whatever its state).
  virtual absl::Status BeginRound(uint64_t round, int selected) = 0;
  // Records the phase the round entered. NOT_FOUND: unknown round; FAILED_PRECONDITION: the
  // round is not running.
  virtual absl::Status SetRoundPhase(uint64_t round, const std::string& phase) = 0;
  // Marks the round aborted with `reason` (kept). A charge already made stays charged.
  // NOT_FOUND: unknown round; FAILED_PRECONDITION: the round is not running.
  virtual absl::Status AbortRound(uint64_t round, const std::string& reason) = 0;
  // The privacy charge of a round plus its participants (device ids), in ONE transaction.
  // Call it before the sum is unmasked, so the charge is durable before anything is released.
  // NOT_FOUND: unknown round; FAILED_PRECONDITION: the round is not running or already
  // charged; INVALID_ARGUMENT: a participant id is empty or repeated.
  virtual absl::Status ChargeRound(const PrivacyCharge& charge,
                                   const std::vector<std::string>& participants) = 0;
  // Writes the adapter blob (and the optimizer state, if not empty) with fsync + atomic
  // rename, then in one transaction: adapter version = previous max + 1, round committed with
  // `summed`. Returns the new version. NOT_FOUND: unknown round; FAILED_PRECONDITION unless the
  // round is running AND charged (an uncharged sum can never be committed); INVALID_ARGUMENT:
  // summed < 0.
  virtual absl::StatusOr<AdapterVersion> CommitRound(uint64_t round, int summed,
                                                     const std::string& adapter_blob,
                                                     const std::string& optimizer_state) = 0;
  // Stores the initial global adapter as version 1, round 0. ALREADY_EXISTS if any adapter
  // version exists.
  virtual absl::StatusOr<AdapterVersion> PutInitialAdapter(const std::string& adapter_blob) = 0;
  // The highest version. NOT_FOUND when there is none.
  virtual absl::StatusOr<AdapterVersion> LatestAdapter() const = 0;
  // All versions, ascending.
  virtual absl::StatusOr<std::vector<AdapterVersion>> ListAdapterVersions() const = 0;
  // The blob's bytes. INVALID_ARGUMENT: not 64 lowercase hex; NOT_FOUND: no such blob;
  // DATA_LOSS: the file's SHA-256 differs from its name (tampered or corrupted).
  virtual absl::StatusOr<std::string> ReadBlob(const std::string& sha256_hex) const = 0;
  // The optimizer state stored with the latest version; "" if none (also after the initial
  // adapter). DATA_LOSS / NOT_FOUND as ReadBlob when its blob is damaged or missing.
  virtual absl::StatusOr<std::string> OptimizerState() const = 0;
  // All rounds, ascending by round.
  virtual absl::StatusOr<std::vector<RoundRecord>> ListRounds() const = 0;
  // Rounds still "running" (e.g. interrupted by a crash), ascending; for recovery.
  virtual absl::StatusOr<std::vector<RoundRecord>> RunningRounds() const = 0;
  // All charges, ascending by round.
  virtual absl::StatusOr<std::vector<PrivacyCharge>> Charges() const = 0;
  // Device id -> number of charged rounds it participated in.
  virtual absl::StatusOr<std::map<std::string, int>> ParticipationCounts() const = 0;
  // Round -> the device ids charged in it, ascending (rounds with no participant are absent).
  virtual absl::StatusOr<std::map<uint64_t, std::vector<std::string>>> ParticipantsByRound()
      const = 0;

  // ---- Releases (schema version 2).
  // Writes the bundle blob, then inserts the release and a "publish" event in one transaction.
  // ALREADY_EXISTS: the version or release id is taken; FAILED_PRECONDITION: the version is
  // not above every published version of its segment, or the segment has a release still
  // rolling or halted (finish, roll back or halt-and-roll-back that one first);
  // INVALID_ARGUMENT: version 0, empty id, percent outside [0, 100].
  virtual absl::Status PublishRelease(const ReleaseRecord& release, const std::string& bundle) = 0;
  // Records a new rollout state and percent for `version` and the event `action` in one
  // transaction. The caller (release_rollout.h) decides what transitions are legal.
  // NOT_FOUND: no such release.
  virtual absl::Status UpdateRelease(const ReleaseRecord& release, const std::string& action) = 0;
  // All releases, ascending by version.
  virtual absl::StatusOr<std::vector<ReleaseRecord>> ListReleases() const = 0;
  // All events, in the order they happened.
  virtual absl::StatusOr<std::vector<ReleaseEvent>> ListReleaseEvents() const = 0;
  // Keeps the device's latest report (one row per device). INVALID_ARGUMENT: empty id.
  virtual absl::Status RecordDeviceRelease(const DeviceReleaseReport& report) = 0;
  // The same for many reports in one transaction (one fsync), in order: a later report of a
  // device replaces an earlier one. INVALID_ARGUMENT (nothing written): an empty id.
  virtual absl::Status RecordDeviceReleases(const std::vector<DeviceReleaseReport>& reports) = 0;
  // Every device's latest report, ordered by device id.
  virtual absl::StatusOr<std::vector<DeviceReleaseReport>> ListDeviceReleases() const = 0;

  // ---- Small config values (the run's recipe as JSON, the coordinator id), any bytes.
  // INVALID_ARGUMENT: empty key.
  virtual absl::Status PutMeta(const std::string& key, const std::string& value) = 0;
  // NOT_FOUND: no value under `key`.
  virtual absl::StatusOr<std::string> GetMeta(const std::string& key) const = 0;
};

// The schema version this build writes (PRAGMA user_version of coordinator.db).
// Version 2 added the release tables; a version-1 folder is migrated when it is opened.
inline constexpr int kStoreSchemaVersion = 2;

// Opens or creates the state folder `dir` (mode 0700 when created) with its database and
// blobs folder. Errors carry a hint: PERMISSION_DENIED (folder not writable),
// FAILED_PRECONDITION (`dir` is a file; the database was written by a newer schema; the file
// is a database of something else), DATA_LOSS (coordinator.db is not an SQLite database or is
// corrupted), INTERNAL (other SQLite or I/O failures).
absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& dir);

// ---- Multi-host mode (docs/coordinator.md, "Multi-host (in progress)").
// A fence: the population whose leader lease (leader_lease.h) this process holds, and the
// epoch it holds it under. A store opened with a fence checks, inside every writing
// transaction, that the lease still carries that epoch; once another process took the lease
// over, every write returns FAILED_PRECONDITION "fenced: ...; step down" and changes nothing.
struct StoreFence {
  std::string population;
  uint64_t epoch = 0;
};

// True when this build has PostgreSQL support (CMake found libpq: FEDLORA_HAVE_POSTGRESQL).
bool PostgresSupported();

// Opens the PostgreSQL implementation on the database named by libpq's `conninfo` (key=value
// pairs, e.g. "host=/run/postgresql dbname=fedlora", or a postgresql:// URI), creating the
// schema if the database has none. Blobs live in the database, content-addressed (table
// `blobs`), committed in the same transaction as the row that names them. Every write is one
// transaction under a database-wide advisory lock, so writers in different processes are
// serialized as SQLite's are. Errors: UNAVAILABLE (server unreachable), PERMISSION_DENIED
// (authentication), FAILED_PRECONDITION (no such database; a newer schema; tables of
// something else), UNIMPLEMENTED (a build without libpq).
absl::StatusOr<std::unique_ptr<Store>> OpenPostgresStore(
    const std::string& conninfo, const std::optional<StoreFence>& fence = std::nullopt);

// SHA-256 of `bytes` as 64 lowercase hex characters.
std::string Sha256Hex(std::string_view bytes);

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_STORE_H_
