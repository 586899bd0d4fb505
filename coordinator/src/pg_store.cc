// PgStore: opening, enrolment and devices, meta values. Parameterised queries only.
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "fedlora/common/status_macros.h"
#include "pg_store_impl.h"
#include "store_checks.h"

namespace fedlora::coordinator {

bool PostgresSupported() { return true; }

absl::StatusOr<std::unique_ptr<Store>> OpenPostgresStore(const std::string& conninfo,
                                                         const std::optional<StoreFence>& fence) {
  if (fence.has_value() && (fence->population.empty() || fence->epoch == 0)) {
    return absl::InvalidArgumentError(
        "coordinator store: a fence needs the population and the epoch its lease was acquired "
        "under (hint: LeaderLease::fence() after a successful TryAcquire)");
  }
  // A fenced writer must not keep locks while paused: the server ends a session idle inside a
  // transaction for 5 s (a live coordinator's transactions take milliseconds).
  internal::PgConn::Settings settings;
  if (fence.has_value()) settings.emplace_back("idle_in_transaction_session_timeout", "5000");
  FEDLORA_ASSIGN_OR_RETURN(auto writer, internal::PgConn::Connect(conninfo, settings));
  FEDLORA_RETURN_IF_ERROR(internal::EnsurePgSchema(*writer));
  FEDLORA_ASSIGN_OR_RETURN(auto reader, internal::PgConn::Connect(conninfo));
  return std::unique_ptr<Store>(
      new internal::PgStore(std::move(writer), std::move(reader), fence));
}

namespace internal {
namespace {

using Lock = std::lock_guard<std::mutex>;

constexpr char kDeviceColumns[] =
    "SELECT device_id, public_key, enrolled_unix, revoked, revoked_reason FROM devices ";

DeviceRecord DeviceFromRow(const PgResult& r, int row) {
  DeviceRecord d;
  d.device_id = r.Text(row, 0);
  d.public_key = r.Bytes(row, 1);
  d.enrolled_unix = r.Int(row, 2);
  d.revoked = r.Bool(row, 3);
  d.revoked_reason = r.Text(row, 4);
  return d;
}

}  // namespace

absl::StatusOr<PgConn*> PgStore::Reader() const {
  FEDLORA_RETURN_IF_ERROR(reader_->EnsureConnected());
  return reader_.get();
}

// ---------------------------------------------------------------- enrolment and devices

absl::Status PgStore::AddEnrollmentTokens(const std::vector<std::string>& hashes) {
  for (const std::string& h : hashes) FEDLORA_RETURN_IF_ERROR(CheckTokenHash(h));
  if (hashes.empty()) return absl::OkStatus();
  Lock lock(mu_);
  const char* op = "adding enrolment tokens";
  FEDLORA_ASSIGN_OR_RETURN(auto txn, BeginWrite(op));
  // One array parameter (the hashes were checked to be hex, so the literal needs no quoting).
  FEDLORA_RETURN_IF_ERROR(
      writer_
          ->Exec("INSERT INTO enrollment_tokens(token_sha256) SELECT unnest($1::text[]) "
                 "ON CONFLICT (token_sha256) DO NOTHING",
                 {PgParam::Text(absl::StrCat("{", absl::StrJoin(hashes, ","), "}"))}, op)
          .status());
  return txn->Commit();
}

absl::Status PgStore::EnrollDevice(const std::string& token_hash, const DeviceRecord& device) {
  FEDLORA_RETURN_IF_ERROR(CheckTokenHash(token_hash));
  FEDLORA_RETURN_IF_ERROR(CheckNewDevice(device));
  Lock lock(mu_);
  const char* op = "enrolling a device";
  FEDLORA_ASSIGN_OR_RETURN(auto txn, BeginWrite(op));
  FEDLORA_ASSIGN_OR_RETURN(
      PgResult tok, writer_->Exec("SELECT used_by, used_unix FROM enrollment_tokens "
                                  "WHERE token_sha256 = $1",
                                  {PgParam::Text(token_hash)}, op));
  if (tok.rows() == 0) return UnknownTokenError();
  if (!tok.IsNull(0, 0)) return TokenUsedError(tok.Text(0, 0), tok.Int(0, 1));
  FEDLORA_ASSIGN_OR_RETURN(PgResult taken,
                           writer_->Exec("SELECT 1 FROM devices WHERE device_id = $1",
                                         {PgParam::Text(device.device_id)}, op));
  if (taken.rows() != 0) return DeviceTakenError(device.device_id);
  const int64_t now = NowUnix();
  FEDLORA_RETURN_IF_ERROR(
      writer_
          ->Exec("INSERT INTO devices(device_id, public_key, enrolled_unix) VALUES ($1, $2, $3)",
                 {PgParam::Text(device.device_id), PgParam::Bytes(device.public_key),
                  PgParam::Int(device.enrolled_unix != 0 ? device.enrolled_unix : now)},
                 op)
          .status());
  FEDLORA_ASSIGN_OR_RETURN(
      PgResult use, writer_->Exec("UPDATE enrollment_tokens SET used_by = $1, used_unix = $2 "
                                  "WHERE token_sha256 = $3 AND used_by IS NULL",
                                  {PgParam::Text(device.device_id), PgParam::Int(now),
                                   PgParam::Text(token_hash)},
                                  op));
  if (use.Affected() != 1) {
    return absl::InternalError(
        "coordinator store: enrolling a device: the token changed during the transaction");
  }
  return txn->Commit();
}

absl::Status PgStore::CheckTokenUnused(const std::string& token_hash) const {
  FEDLORA_RETURN_IF_ERROR(CheckTokenHash(token_hash));
  Lock lock(read_mu_);
  FEDLORA_ASSIGN_OR_RETURN(PgConn * conn, Reader());
  FEDLORA_ASSIGN_OR_RETURN(
      PgResult r, conn->ExecRetrying("SELECT used_by IS NULL FROM enrollment_tokens "
                             "WHERE token_sha256 = $1",
                             {PgParam::Text(token_hash)}, "looking up an enrolment token"));
  if (r.rows() == 0) return UnknownTokenError();
  if (!r.Bool(0, 0)) return TokenUsedError("", 0);
  return absl::OkStatus();
}

absl::StatusOr<DeviceRecord> PgStore::GetDevice(const std::string& device_id) const {
  Lock lock(read_mu_);
  FEDLORA_ASSIGN_OR_RETURN(PgConn * conn, Reader());
  FEDLORA_ASSIGN_OR_RETURN(PgResult r,
                           conn->ExecRetrying(absl::StrCat(kDeviceColumns, "WHERE device_id = $1").c_str(),
                                      {PgParam::Text(device_id)}, "reading a device"));
  if (r.rows() == 0) return NoDeviceError(device_id);
  return DeviceFromRow(r, 0);
}

absl::StatusOr<std::vector<DeviceRecord>> PgStore::ListDevices() const {
  Lock lock(read_mu_);
  FEDLORA_ASSIGN_OR_RETURN(PgConn * conn, Reader());
  FEDLORA_ASSIGN_OR_RETURN(PgResult r,
                           conn->ExecRetrying(absl::StrCat(kDeviceColumns, "ORDER BY device_id COLLATE \"C\"").c_str(),
                                      "listing devices"));
  std::vector<DeviceRecord> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(DeviceFromRow(r, i));
  return out;
}

absl::Status PgStore::RevokeDevice(const std::string& device_id, const std::string& reason) {
  Lock lock(mu_);
  const char* op = "revoking a device";
  FEDLORA_ASSIGN_OR_RETURN(auto txn, BeginWrite(op));
  FEDLORA_ASSIGN_OR_RETURN(PgResult r,
                           writer_->Exec("SELECT revoked FROM devices WHERE device_id = $1",
                                         {PgParam::Text(device_id)}, op));
  if (r.rows() == 0) return NoDeviceToRevokeError(device_id);
  if (r.Bool(0, 0)) return absl::OkStatus();  // already revoked: keep the first reason
  FEDLORA_RETURN_IF_ERROR(writer_
                              ->Exec("UPDATE devices SET revoked = true, revoked_reason = $1, "
                                     "revoked_unix = $2 WHERE device_id = $3",
                                     {PgParam::Text(reason), PgParam::Int(NowUnix()),
                                      PgParam::Text(device_id)},
                                     op)
                              .status());
  return txn->Commit();
}

absl::StatusOr<int> PgStore::CountUnusedTokens() const {
  Lock lock(read_mu_);
  FEDLORA_ASSIGN_OR_RETURN(PgConn * conn, Reader());
  FEDLORA_ASSIGN_OR_RETURN(
      PgResult r, conn->ExecRetrying("SELECT COUNT(*) FROM enrollment_tokens WHERE used_by IS NULL",
                             "counting enrolment tokens"));
  return static_cast<int>(r.Int(0, 0));
}

// ---------------------------------------------------------------- meta

absl::Status PgStore::PutMeta(const std::string& key, const std::string& value) {
  if (key.empty()) return EmptyMetaKeyError();
  Lock lock(mu_);
  const char* op = "writing a meta value";
  FEDLORA_ASSIGN_OR_RETURN(auto txn, BeginWrite(op));
  FEDLORA_RETURN_IF_ERROR(writer_
                              ->Exec("INSERT INTO meta(key, value) VALUES ($1, $2) "
                                     "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                                     {PgParam::Text(key), PgParam::Bytes(value)}, op)
                              .status());
  return txn->Commit();
}

absl::StatusOr<std::string> PgStore::GetMeta(const std::string& key) const {
  Lock lock(read_mu_);
  FEDLORA_ASSIGN_OR_RETURN(PgConn * conn, Reader());
  FEDLORA_ASSIGN_OR_RETURN(PgResult r, conn->ExecRetrying("SELECT value FROM meta WHERE key = $1",
                                                  {PgParam::Text(key)}, "reading a meta value"));
  if (r.rows() == 0) return NoMetaError(key);
  return r.Bytes(0, 0);
}

}  // namespace internal
}  // namespace fedlora::coordinator
