// PgStore: round lifecycle, privacy charges, adapter versions and their blobs.
#include "absl/strings/str_cat.h"
#include "blob_dir.h"
#include "fedlora/common/status_macros.h"
#include "pg_store_impl.h"
#include "store_checks.h"

namespace fedlora::coordinator::internal {
namespace {

using Lock = std::lock_guard<std::mutex>;

constexpr char kRoundColumns[] =
    "SELECT round, state, phase, abort_reason, started_unix, ended_unix, selected, summed, "
    "charged, epsilon_after FROM rounds ";
constexpr char kVersionColumns[] =
    "SELECT version, sha256, COALESCE(round, 0), created_unix, bytes FROM adapter_versions ";

RoundRecord RoundFromRow(const PgResult& r, int row) {
  RoundRecord rr;
  rr.round = static_cast<uint64_t>(r.Int(row, 0));
  rr.state = r.Text(row, 1);
  rr.phase = r.Text(row, 2);
  rr.abort_reason = r.Text(row, 3);
  rr.started_unix = r.Int(row, 4);
  rr.ended_unix = r.Int(row, 5);
  rr.selected = static_cast<int>(r.Int(row, 6));
  rr.summed = static_cast<int>(r.Int(row, 7));
  rr.charged = r.Bool(row, 8);
  rr.epsilon_after = r.Double(row, 9);
  return rr;
}

PgParam Round(uint64_t round) { return PgParam::Int(static_cast<int64_t>(round)); }

}  // namespace

absl::StatusOr<RoundRecord> PgStore::LoadRound(uint64_t round) {
  FEDLORA_ASSIGN_OR_RETURN(
      PgResult r, writer_->Exec(absl::StrCat(kRoundColumns, "WHERE round = $1").c_str(),
                                {Round(round)}, "reading a round"));
  if (r.rows() == 0) return RoundNotBegunError(round);
  return RoundFromRow(r, 0);
}

absl::Status PgStore::BeginRound(uint64_t round, int selected) {
  FEDLORA_RETURN_IF_ERROR(CheckNewRound(round, selected));
  Lock lock(mu_);
  const char* op = "beginning a round";
  FEDLORA_ASSIGN_OR_RETURN(auto txn, BeginWrite(op));
  absl::StatusOr<RoundRecord> existing = LoadRound(round);
  if (existing.ok()) return RoundExistsError(round, existing->state);
  if (!absl::IsNotFound(existing.status())) return existing.status();
  FEDLORA_RETURN_IF_ERROR(writer_
                              ->Exec("INSERT INTO rounds(round, state, started_unix, selected) "
                                     "VALUES ($1, 'running', $2, $3)",
                                     {Round(round), PgParam::Int(NowUnix()),
                                      PgParam::Int(selected)},
                                     op)
                              .status());
  return txn->Commit();
}

absl::Status PgStore::SetRoundPhase(uint64_t round, const std::string& phase) {
  Lock lock(mu_);
  const char* op = "recording a round phase";
  FEDLORA_ASSIGN_OR_RETURN(auto txn, BeginWrite(op));
  FEDLORA_ASSIGN_OR_RETURN(RoundRecord r, LoadRound(round));
  FEDLORA_RETURN_IF_ERROR(CheckRunning(r, "change the phase of"));
  FEDLORA_RETURN_IF_ERROR(writer_
                              ->Exec("UPDATE rounds SET phase = $1 WHERE round = $2",
                                     {PgParam::Text(phase), Round(round)}, op)
                              .status());
  return txn->Commit();
}

absl::Status PgStore::AbortRound(uint64_t round, const std::string& reason) {
  Lock lock(mu_);
  const char* op = "aborting a round";
  FEDLORA_ASSIGN_OR_RETURN(auto txn, BeginWrite(op));
  FEDLORA_ASSIGN_OR_RETURN(RoundRecord r, LoadRound(round));
  FEDLORA_RETURN_IF_ERROR(CheckRunning(r, "abort"));
  FEDLORA_RETURN_IF_ERROR(writer_
                              ->Exec("UPDATE rounds SET state = 'aborted', abort_reason = $1, "
                                     "ended_unix = $2 WHERE round = $3",
                                     {PgParam::Text(reason), PgParam::Int(NowUnix()),
                                      Round(round)},
                                     op)
                              .status());
  return txn->Commit();
}

absl::Status PgStore::ChargeRound(const PrivacyCharge& charge,
                                  const std::vector<std::string>& participants) {
  FEDLORA_RETURN_IF_ERROR(CheckParticipants(charge.round, participants));
  Lock lock(mu_);
  const char* op = "charging a round";
  FEDLORA_ASSIGN_OR_RETURN(auto txn, BeginWrite(op));
  FEDLORA_ASSIGN_OR_RETURN(RoundRecord r, LoadRound(charge.round));
  FEDLORA_RETURN_IF_ERROR(CheckRunning(r, "charge"));
  if (r.charged) return AlreadyChargedError(charge.round);
  const int64_t unix = charge.unix != 0 ? charge.unix : NowUnix();
  FEDLORA_RETURN_IF_ERROR(
      writer_
          ->Exec("INSERT INTO privacy_charges(round, mechanism, epsilon_after, unix) "
                 "VALUES ($1, $2, $3, $4)",
                 {Round(charge.round), PgParam::Bytes(charge.mechanism),
                  PgParam::Double(charge.epsilon_after), PgParam::Int(unix)},
                 op)
          .status());
  for (const std::string& id : participants) {
    FEDLORA_RETURN_IF_ERROR(writer_
                                ->Exec("INSERT INTO participants(round, device_id) VALUES ($1, $2)",
                                       {Round(charge.round), PgParam::Text(id)}, op)
                                .status());
  }
  FEDLORA_RETURN_IF_ERROR(
      writer_
          ->Exec("UPDATE rounds SET charged = true, epsilon_after = $1 WHERE round = $2",
                 {PgParam::Double(charge.epsilon_after), Round(charge.round)}, op)
          .status());
  return txn->Commit();
}

absl::Status PgStore::PutBlob(const std::string& sha, const std::string& bytes,
                              absl::string_view op) {
  return writer_
      ->Exec("INSERT INTO blobs(sha256, data) VALUES ($1, $2) ON CONFLICT (sha256) DO NOTHING",
             {PgParam::Text(sha), PgParam::Bytes(bytes)}, op)
      .status();
}

absl::StatusOr<AdapterVersion> PgStore::InsertVersion(uint64_t round,
                                                      const std::string& adapter_blob,
                                                      const std::string& optimizer_state) {
  const char* op = "recording an adapter version";
  AdapterVersion v;
  v.sha256 = Sha256Hex(adapter_blob);
  FEDLORA_RETURN_IF_ERROR(PutBlob(v.sha256, adapter_blob, op));
  std::string optimizer_sha;
  if (!optimizer_state.empty()) {
    optimizer_sha = Sha256Hex(optimizer_state);
    FEDLORA_RETURN_IF_ERROR(PutBlob(optimizer_sha, optimizer_state, op));
  }
  FEDLORA_ASSIGN_OR_RETURN(
      PgResult max, writer_->Exec("SELECT COALESCE(MAX(version), 0) FROM adapter_versions", op));
  v.version = static_cast<uint64_t>(max.Int(0, 0)) + 1;
  v.round = round;
  v.created_unix = NowUnix();
  v.bytes = adapter_blob.size();
  FEDLORA_RETURN_IF_ERROR(
      writer_
          ->Exec("INSERT INTO adapter_versions(version, sha256, round, created_unix, bytes, "
                 "optimizer_sha256) VALUES ($1, $2, $3, $4, $5, $6)",
                 {PgParam::Int(static_cast<int64_t>(v.version)), PgParam::Text(v.sha256),
                  round == 0 ? PgParam::Null() : Round(round), PgParam::Int(v.created_unix),
                  PgParam::Int(static_cast<int64_t>(v.bytes)),
                  optimizer_sha.empty() ? PgParam::Null() : PgParam::Text(optimizer_sha)},
                 op)
          .status());
  return v;
}

absl::StatusOr<AdapterVersion> PgStore::CommitRound(uint64_t round, int summed,
                                                    const std::string& adapter_blob,
                                                    const std::string& optimizer_state) {
  FEDLORA_RETURN_IF_ERROR(CheckSummed(round, summed));
  Lock lock(mu_);
  const char* op = "committing a round";
  // The blobs, the version row and the round's state in one transaction: nothing to clean up
  // after a refusal or a crash.
  FEDLORA_ASSIGN_OR_RETURN(auto txn, BeginWrite(op));
  FEDLORA_ASSIGN_OR_RETURN(RoundRecord r, LoadRound(round));
  FEDLORA_RETURN_IF_ERROR(CheckCommittable(r));
  FEDLORA_ASSIGN_OR_RETURN(AdapterVersion v, InsertVersion(round, adapter_blob, optimizer_state));
  FEDLORA_RETURN_IF_ERROR(writer_
                              ->Exec("UPDATE rounds SET state = 'committed', summed = $1, "
                                     "ended_unix = $2 WHERE round = $3",
                                     {PgParam::Int(summed), PgParam::Int(v.created_unix),
                                      Round(round)},
                                     op)
                              .status());
  FEDLORA_RETURN_IF_ERROR(txn->Commit());
  return v;
}

absl::StatusOr<AdapterVersion> PgStore::PutInitialAdapter(const std::string& adapter_blob) {
  Lock lock(mu_);
  const char* op = "storing the initial adapter";
  FEDLORA_ASSIGN_OR_RETURN(auto txn, BeginWrite(op));
  FEDLORA_ASSIGN_OR_RETURN(PgResult n,
                           writer_->Exec("SELECT COUNT(*) FROM adapter_versions", op));
  if (n.Int(0, 0) > 0) return InitialExistsError("the database", n.Int(0, 0));
  FEDLORA_ASSIGN_OR_RETURN(AdapterVersion v, InsertVersion(0, adapter_blob, ""));
  FEDLORA_RETURN_IF_ERROR(txn->Commit());
  return v;
}

// ---------------------------------------------------------------- reads

absl::StatusOr<std::vector<RoundRecord>> PgStore::QueryRounds(PgConn& conn, const char* sql) {
  FEDLORA_ASSIGN_OR_RETURN(PgResult r, conn.ExecRetrying(sql, "listing rounds"));
  std::vector<RoundRecord> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(RoundFromRow(r, i));
  return out;
}

absl::StatusOr<std::vector<RoundRecord>> PgStore::ListRounds() const {
  Lock lock(read_mu_);
  FEDLORA_ASSIGN_OR_RETURN(PgConn * conn, Reader());
  return QueryRounds(*conn, absl::StrCat(kRoundColumns, "ORDER BY round").c_str());
}

absl::StatusOr<std::vector<RoundRecord>> PgStore::RunningRounds() const {
  Lock lock(read_mu_);
  FEDLORA_ASSIGN_OR_RETURN(PgConn * conn, Reader());
  return QueryRounds(*conn,
                     absl::StrCat(kRoundColumns, "WHERE state = 'running' ORDER BY round").c_str());
}

absl::StatusOr<std::vector<PrivacyCharge>> PgStore::Charges() const {
  Lock lock(read_mu_);
  FEDLORA_ASSIGN_OR_RETURN(PgConn * conn, Reader());
  FEDLORA_ASSIGN_OR_RETURN(
      PgResult r, conn->ExecRetrying("SELECT round, mechanism, epsilon_after, unix FROM privacy_charges "
                             "ORDER BY round",
                             "listing privacy charges"));
  std::vector<PrivacyCharge> out;
  for (int i = 0; i < r.rows(); ++i) {
    out.push_back({static_cast<uint64_t>(r.Int(i, 0)), r.Bytes(i, 1), r.Double(i, 2),
                   r.Int(i, 3)});
  }
  return out;
}

absl::StatusOr<std::map<std::string, int>> PgStore::ParticipationCounts() const {
  Lock lock(read_mu_);
  FEDLORA_ASSIGN_OR_RETURN(PgConn * conn, Reader());
  FEDLORA_ASSIGN_OR_RETURN(
      PgResult r, conn->ExecRetrying("SELECT device_id, COUNT(*) FROM participants GROUP BY device_id",
                             "counting participation"));
  std::map<std::string, int> out;
  for (int i = 0; i < r.rows(); ++i) out[r.Text(i, 0)] = static_cast<int>(r.Int(i, 1));
  return out;
}

absl::StatusOr<std::map<uint64_t, std::vector<std::string>>> PgStore::ParticipantsByRound()
    const {
  Lock lock(read_mu_);
  FEDLORA_ASSIGN_OR_RETURN(PgConn * conn, Reader());
  FEDLORA_ASSIGN_OR_RETURN(
      PgResult r,
      conn->ExecRetrying("SELECT round, device_id FROM participants ORDER BY round, device_id COLLATE \"C\"",
                 "listing participants"));
  std::map<uint64_t, std::vector<std::string>> out;
  for (int i = 0; i < r.rows(); ++i) out[static_cast<uint64_t>(r.Int(i, 0))].push_back(r.Text(i, 1));
  return out;
}

absl::StatusOr<std::vector<AdapterVersion>> PgStore::QueryVersions(PgConn& conn, const char* sql) {
  FEDLORA_ASSIGN_OR_RETURN(PgResult r, conn.ExecRetrying(sql, "listing adapter versions"));
  std::vector<AdapterVersion> out;
  for (int i = 0; i < r.rows(); ++i) {
    out.push_back({static_cast<uint64_t>(r.Int(i, 0)), r.Text(i, 1),
                   static_cast<uint64_t>(r.Int(i, 2)), r.Int(i, 3),
                   static_cast<uint64_t>(r.Int(i, 4))});
  }
  return out;
}

absl::StatusOr<AdapterVersion> PgStore::LatestAdapter() const {
  Lock lock(read_mu_);
  FEDLORA_ASSIGN_OR_RETURN(PgConn * conn, Reader());
  FEDLORA_ASSIGN_OR_RETURN(
      auto versions,
      QueryVersions(*conn, absl::StrCat(kVersionColumns, "ORDER BY version DESC LIMIT 1").c_str()));
  if (versions.empty()) return NoAdapterError(conn->where());
  return versions.front();
}

absl::StatusOr<std::vector<AdapterVersion>> PgStore::ListAdapterVersions() const {
  Lock lock(read_mu_);
  FEDLORA_ASSIGN_OR_RETURN(PgConn * conn, Reader());
  return QueryVersions(*conn, absl::StrCat(kVersionColumns, "ORDER BY version").c_str());
}

absl::StatusOr<std::string> PgStore::ReadBlob(const std::string& sha256_hex) const {
  if (!IsSha256Hex(sha256_hex)) {
    return absl::InvalidArgumentError(
        "coordinator store: a blob name must be a SHA-256 in hex (hint: 64 lowercase hex "
        "characters, as listed by the adapter versions)");
  }
  Lock lock(read_mu_);
  FEDLORA_ASSIGN_OR_RETURN(PgConn * conn, Reader());
  FEDLORA_ASSIGN_OR_RETURN(PgResult r, conn->ExecRetrying("SELECT data FROM blobs WHERE sha256 = $1",
                                                  {PgParam::Text(sha256_hex)}, "reading a blob",
                                                  /*binary_result=*/true));
  if (r.rows() == 0) {
    return absl::NotFoundError(absl::StrCat("coordinator store: no blob ", sha256_hex, " in ",
                                            conn->where(),
                                            " (hint: the name is not one the store listed)"));
  }
  std::string data = r.Bytes(0, 0);
  const std::string actual = Sha256Hex(data);
  if (actual != sha256_hex) {
    return absl::DataLossError(absl::StrCat(
        "coordinator store: blob ", sha256_hex, " in ", conn->where(), " has SHA-256 ", actual,
        ": it was modified or corrupted (hint: restore the database from a backup)"));
  }
  return data;
}

absl::StatusOr<std::string> PgStore::OptimizerState() const {
  std::string sha;
  {
    Lock lock(read_mu_);
    FEDLORA_ASSIGN_OR_RETURN(PgConn * conn, Reader());
    FEDLORA_ASSIGN_OR_RETURN(PgResult r,
                             conn->ExecRetrying("SELECT optimizer_sha256 FROM adapter_versions "
                                        "ORDER BY version DESC LIMIT 1",
                                        "reading the optimizer state"));
    if (r.rows() == 0 || r.IsNull(0, 0)) return std::string();
    sha = r.Text(0, 0);
  }
  return ReadBlob(sha);
}

}  // namespace fedlora::coordinator::internal
