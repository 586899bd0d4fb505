// SqliteStore methods. Every statement is prepared with bound parameters; every mutation is
// one BEGIN IMMEDIATE transaction; one mutex serializes the calls of this process.
#include "absl/strings/str_cat.h"
#include "blob_dir.h"
#include "fedlora/common/status_macros.h"
#include "sqlite_store_impl.h"
#include "store_checks.h"

namespace fedlora::coordinator::internal {
namespace {

using Lock = std::lock_guard<std::mutex>;

constexpr char kRoundColumns[] =
    "SELECT round, state, phase, abort_reason, started_unix, ended_unix, selected, summed, "
    "charged, epsilon_after FROM rounds ";

RoundRecord RoundFromRow(const Stmt& st) {
  RoundRecord r;
  r.round = static_cast<uint64_t>(st.Int(0));
  r.state = st.Bytes(1);
  r.phase = st.Bytes(2);
  r.abort_reason = st.Bytes(3);
  r.started_unix = st.Int(4);
  r.ended_unix = st.Int(5);
  r.selected = static_cast<int>(st.Int(6));
  r.summed = static_cast<int>(st.Int(7));
  r.charged = st.Int(8) != 0;
  r.epsilon_after = st.Double(9);
  return r;
}

DeviceRecord DeviceFromRow(const Stmt& st) {
  DeviceRecord d;
  d.device_id = st.Bytes(0);
  d.public_key = st.Bytes(1);
  d.enrolled_unix = st.Int(2);
  d.revoked = st.Int(3) != 0;
  d.revoked_reason = st.Bytes(4);
  return d;
}

}  // namespace

// ---------------------------------------------------------------- enrolment and devices

absl::Status SqliteStore::AddEnrollmentTokens(const std::vector<std::string>& hashes) {
  for (const std::string& h : hashes) FEDLORA_RETURN_IF_ERROR(CheckTokenHash(h));
  Lock lock(mu_);
  const char* op = "adding enrolment tokens";
  FEDLORA_ASSIGN_OR_RETURN(auto txn, Txn::Begin(*db_, op));
  FEDLORA_ASSIGN_OR_RETURN(
      Stmt st,
      Stmt::Prepare(*db_, "INSERT OR IGNORE INTO enrollment_tokens(token_sha256) VALUES (?)", op));
  for (const std::string& h : hashes) {
    FEDLORA_RETURN_IF_ERROR(st.Reset().BindText(1, h).Run());
  }
  return txn->Commit();
}

absl::Status SqliteStore::EnrollDevice(const std::string& token_hash, const DeviceRecord& device) {
  FEDLORA_RETURN_IF_ERROR(CheckTokenHash(token_hash));
  FEDLORA_RETURN_IF_ERROR(CheckNewDevice(device));
  Lock lock(mu_);
  const char* op = "enrolling a device";
  FEDLORA_ASSIGN_OR_RETURN(auto txn, Txn::Begin(*db_, op));
  {
    FEDLORA_ASSIGN_OR_RETURN(Stmt st,
                             Stmt::Prepare(*db_,
                                           "SELECT used_by, used_unix FROM enrollment_tokens "
                                           "WHERE token_sha256 = ?",
                                           op));
    FEDLORA_ASSIGN_OR_RETURN(bool row, st.BindText(1, token_hash).Step());
    if (!row) return UnknownTokenError();
    if (!st.IsNull(0)) return TokenUsedError(st.Bytes(0), st.Int(1));
  }
  {
    FEDLORA_ASSIGN_OR_RETURN(Stmt st,
                             Stmt::Prepare(*db_, "SELECT 1 FROM devices WHERE device_id = ?", op));
    FEDLORA_ASSIGN_OR_RETURN(bool row, st.BindText(1, device.device_id).Step());
    if (row) return DeviceTakenError(device.device_id);
  }
  const int64_t now = NowUnix();
  FEDLORA_ASSIGN_OR_RETURN(
      Stmt ins, Stmt::Prepare(*db_,
                              "INSERT INTO devices(device_id, public_key, enrolled_unix) "
                              "VALUES (?, ?, ?)",
                              op));
  FEDLORA_RETURN_IF_ERROR(ins.BindText(1, device.device_id)
                              .BindBlob(2, device.public_key)
                              .BindInt(3, device.enrolled_unix != 0 ? device.enrolled_unix : now)
                              .Run());
  FEDLORA_ASSIGN_OR_RETURN(Stmt use,
                           Stmt::Prepare(*db_,
                                         "UPDATE enrollment_tokens SET used_by = ?, used_unix = ? "
                                         "WHERE token_sha256 = ? AND used_by IS NULL",
                                         op));
  FEDLORA_RETURN_IF_ERROR(
      use.BindText(1, device.device_id).BindInt(2, now).BindText(3, token_hash).Run());
  if (use.Changes() != 1) {
    return absl::InternalError(
        "coordinator store: enrolling a device: the token changed "
        "during the transaction");
  }
  return txn->Commit();
}

absl::Status SqliteStore::CheckTokenUnused(const std::string& token_hash) const {
  FEDLORA_RETURN_IF_ERROR(CheckTokenHash(token_hash));
  Lock lock(read_mu_);
  FEDLORA_ASSIGN_OR_RETURN(
      Stmt st, Stmt::Prepare(*reader_,
                             "SELECT used_by IS NULL FROM enrollment_tokens "
                             "WHERE token_sha256 = ?",
                             "looking up an enrolment token"));
  FEDLORA_ASSIGN_OR_RETURN(bool row, st.BindText(1, token_hash).Step());
  if (!row) return UnknownTokenError();
  if (st.Int(0) == 0) return TokenUsedError("", 0);
  return absl::OkStatus();
}

absl::StatusOr<DeviceRecord> SqliteStore::GetDevice(const std::string& device_id) const {
  Lock lock(read_mu_);
  FEDLORA_ASSIGN_OR_RETURN(Stmt st,
                           Stmt::Prepare(*reader_,
                                         "SELECT device_id, public_key, enrolled_unix, revoked, "
                                         "revoked_reason FROM devices WHERE device_id = ?",
                                         "reading a device"));
  FEDLORA_ASSIGN_OR_RETURN(bool row, st.BindText(1, device_id).Step());
  if (!row) return NoDeviceError(device_id);
  return DeviceFromRow(st);
}

absl::StatusOr<std::vector<DeviceRecord>> SqliteStore::ListDevices() const {
  Lock lock(read_mu_);
  FEDLORA_ASSIGN_OR_RETURN(Stmt st,
                           Stmt::Prepare(*reader_,
                                         "SELECT device_id, public_key, enrolled_unix, revoked, "
                                         "revoked_reason FROM devices ORDER BY device_id",
                                         "listing devices"));
  std::vector<DeviceRecord> out;
  for (;;) {
    FEDLORA_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    out.push_back(DeviceFromRow(st));
  }
  return out;
}

absl::Status SqliteStore::RevokeDevice(const std::string& device_id, const std::string& reason) {
  Lock lock(mu_);
  const char* op = "revoking a device";
  FEDLORA_ASSIGN_OR_RETURN(auto txn, Txn::Begin(*db_, op));
  FEDLORA_ASSIGN_OR_RETURN(
      Stmt st, Stmt::Prepare(*db_, "SELECT revoked FROM devices WHERE device_id = ?", op));
  FEDLORA_ASSIGN_OR_RETURN(bool row, st.BindText(1, device_id).Step());
  if (!row) return NoDeviceToRevokeError(device_id);
  if (st.Int(0) != 0) return absl::OkStatus();  // already revoked: keep the first reason
  FEDLORA_ASSIGN_OR_RETURN(Stmt up,
                           Stmt::Prepare(*db_,
                                         "UPDATE devices SET revoked = 1, revoked_reason = ?, "
                                         "revoked_unix = ? WHERE device_id = ?",
                                         op));
  FEDLORA_RETURN_IF_ERROR(
      up.BindText(1, reason).BindInt(2, NowUnix()).BindText(3, device_id).Run());
  return txn->Commit();
}

absl::StatusOr<int> SqliteStore::CountUnusedTokens() const {
  Lock lock(read_mu_);
  FEDLORA_ASSIGN_OR_RETURN(
      Stmt st,
      Stmt::Prepare(*reader_, "SELECT COUNT(*) FROM enrollment_tokens WHERE used_by IS NULL",
                    "counting enrolment tokens"));
  FEDLORA_ASSIGN_OR_RETURN(bool row, st.Step());
  return row ? static_cast<int>(st.Int(0)) : 0;
}

// ---------------------------------------------------------------- meta

absl::Status SqliteStore::PutMeta(const std::string& key, const std::string& value) {
  if (key.empty()) return EmptyMetaKeyError();
  Lock lock(mu_);
  const char* op = "writing a meta value";
  FEDLORA_ASSIGN_OR_RETURN(auto txn, Txn::Begin(*db_, op));
  FEDLORA_ASSIGN_OR_RETURN(Stmt st,
                           Stmt::Prepare(*db_,
                                         "INSERT INTO meta(key, value) VALUES (?, ?) "
                                         "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                                         op));
  FEDLORA_RETURN_IF_ERROR(st.BindText(1, key).BindBlob(2, value).Run());
  return txn->Commit();
}

absl::StatusOr<std::string> SqliteStore::GetMeta(const std::string& key) const {
  Lock lock(read_mu_);
  FEDLORA_ASSIGN_OR_RETURN(
      Stmt st,
      Stmt::Prepare(*reader_, "SELECT value FROM meta WHERE key = ?", "reading a meta value"));
  FEDLORA_ASSIGN_OR_RETURN(bool row, st.BindText(1, key).Step());
  if (!row) return NoMetaError(key);
  return st.Bytes(0);
}

// ---------------------------------------------------------------- rounds (reads)

absl::StatusOr<std::vector<RoundRecord>> SqliteStore::QueryRounds(const char* sql) const {
  FEDLORA_ASSIGN_OR_RETURN(Stmt st, Stmt::Prepare(*reader_, sql, "listing rounds"));
  std::vector<RoundRecord> out;
  for (;;) {
    FEDLORA_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    out.push_back(RoundFromRow(st));
  }
  return out;
}

absl::StatusOr<RoundRecord> SqliteStore::LoadRound(uint64_t round) const {
  std::string sql = absl::StrCat(kRoundColumns, "WHERE round = ?");
  FEDLORA_ASSIGN_OR_RETURN(Stmt st, Stmt::Prepare(*db_, sql.c_str(), "reading a round"));
  FEDLORA_ASSIGN_OR_RETURN(bool row, st.BindInt(1, static_cast<int64_t>(round)).Step());
  if (!row) return RoundNotBegunError(round);
  return RoundFromRow(st);
}

absl::StatusOr<RoundRecord> SqliteStore::LoadRunningRound(uint64_t round,
                                                          absl::string_view action) const {
  FEDLORA_ASSIGN_OR_RETURN(RoundRecord r, LoadRound(round));
  FEDLORA_RETURN_IF_ERROR(CheckRunning(r, action));
  return r;
}

absl::StatusOr<std::vector<RoundRecord>> SqliteStore::ListRounds() const {
  Lock lock(read_mu_);
  return QueryRounds(absl::StrCat(kRoundColumns, "ORDER BY round").c_str());
}

absl::StatusOr<std::vector<RoundRecord>> SqliteStore::RunningRounds() const {
  Lock lock(read_mu_);
  return QueryRounds(absl::StrCat(kRoundColumns, "WHERE state = 'running' ORDER BY round").c_str());
}

absl::StatusOr<std::vector<PrivacyCharge>> SqliteStore::Charges() const {
  Lock lock(read_mu_);
  FEDLORA_ASSIGN_OR_RETURN(
      Stmt st, Stmt::Prepare(*reader_,
                             "SELECT round, mechanism, epsilon_after, unix FROM privacy_charges "
                             "ORDER BY round",
                             "listing privacy charges"));
  std::vector<PrivacyCharge> out;
  for (;;) {
    FEDLORA_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    PrivacyCharge c;
    c.round = static_cast<uint64_t>(st.Int(0));
    c.mechanism = st.Bytes(1);
    c.epsilon_after = st.Double(2);
    c.unix = st.Int(3);
    out.push_back(std::move(c));
  }
  return out;
}

absl::StatusOr<std::map<std::string, int>> SqliteStore::ParticipationCounts() const {
  Lock lock(read_mu_);
  FEDLORA_ASSIGN_OR_RETURN(
      Stmt st,
      Stmt::Prepare(*reader_, "SELECT device_id, COUNT(*) FROM participants GROUP BY device_id",
                    "counting participation"));
  std::map<std::string, int> out;
  for (;;) {
    FEDLORA_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    out[st.Bytes(0)] = static_cast<int>(st.Int(1));
  }
  return out;
}

absl::StatusOr<std::map<uint64_t, std::vector<std::string>>> SqliteStore::ParticipantsByRound()
    const {
  Lock lock(read_mu_);
  std::map<uint64_t, std::vector<std::string>> out;
  FEDLORA_ASSIGN_OR_RETURN(
      Stmt st,
      Stmt::Prepare(*reader_, "SELECT round, device_id FROM participants ORDER BY round, device_id",
                    "listing participants"));
  for (;;) {
    FEDLORA_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    out[static_cast<uint64_t>(st.Int(0))].push_back(st.Bytes(1));
  }
  return out;
}

}  // namespace fedlora::coordinator::internal
