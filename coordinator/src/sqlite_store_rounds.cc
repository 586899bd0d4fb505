// SqliteStore: round lifecycle, privacy charges and adapter versions.
#include "absl/strings/str_cat.h"
#include "blob_dir.h"
#include "fedlora/common/status_macros.h"
#include "sqlite_store_impl.h"
#include "store_checks.h"

namespace fedlora::coordinator::internal {
namespace {

using Lock = std::lock_guard<std::mutex>;

constexpr char kVersionColumns[] =
    "SELECT version, sha256, COALESCE(round, 0), created_unix, bytes FROM adapter_versions ";

}  // namespace

absl::Status SqliteStore::BeginRound(uint64_t round, int selected) {
  FEDLORA_RETURN_IF_ERROR(CheckNewRound(round, selected));
  Lock lock(mu_);
  const char* op = "beginning a round";
  FEDLORA_ASSIGN_OR_RETURN(auto txn, Txn::Begin(*db_, op));
  absl::StatusOr<RoundRecord> existing = LoadRound(round);
  if (existing.ok()) return RoundExistsError(round, existing->state);
  if (!absl::IsNotFound(existing.status())) return existing.status();
  FEDLORA_ASSIGN_OR_RETURN(Stmt st,
                           Stmt::Prepare(*db_,
                                         "INSERT INTO rounds(round, state, started_unix, selected) "
                                         "VALUES (?, 'running', ?, ?)",
                                         op));
  FEDLORA_RETURN_IF_ERROR(
      st.BindInt(1, static_cast<int64_t>(round)).BindInt(2, NowUnix()).BindInt(3, selected).Run());
  return txn->Commit();
}

absl::Status SqliteStore::SetRoundPhase(uint64_t round, const std::string& phase) {
  Lock lock(mu_);
  const char* op = "recording a round phase";
  FEDLORA_ASSIGN_OR_RETURN(auto txn, Txn::Begin(*db_, op));
  FEDLORA_RETURN_IF_ERROR(LoadRunningRound(round, "change the phase of").status());
  FEDLORA_ASSIGN_OR_RETURN(Stmt st,
                           Stmt::Prepare(*db_, "UPDATE rounds SET phase = ? WHERE round = ?", op));
  FEDLORA_RETURN_IF_ERROR(st.BindText(1, phase).BindInt(2, static_cast<int64_t>(round)).Run());
  return txn->Commit();
}

absl::Status SqliteStore::AbortRound(uint64_t round, const std::string& reason) {
  Lock lock(mu_);
  const char* op = "aborting a round";
  FEDLORA_ASSIGN_OR_RETURN(auto txn, Txn::Begin(*db_, op));
  FEDLORA_RETURN_IF_ERROR(LoadRunningRound(round, "abort").status());
  FEDLORA_ASSIGN_OR_RETURN(Stmt st,
                           Stmt::Prepare(*db_,
                                         "UPDATE rounds SET state = 'aborted', abort_reason = ?, "
                                         "ended_unix = ? WHERE round = ?",
                                         op));
  FEDLORA_RETURN_IF_ERROR(
      st.BindText(1, reason).BindInt(2, NowUnix()).BindInt(3, static_cast<int64_t>(round)).Run());
  return txn->Commit();
}

absl::Status SqliteStore::ChargeRound(const PrivacyCharge& charge,
                                      const std::vector<std::string>& participants) {
  FEDLORA_RETURN_IF_ERROR(CheckParticipants(charge.round, participants));
  Lock lock(mu_);
  const char* op = "charging a round";
  FEDLORA_ASSIGN_OR_RETURN(auto txn, Txn::Begin(*db_, op));
  FEDLORA_ASSIGN_OR_RETURN(RoundRecord r, LoadRunningRound(charge.round, "charge"));
  if (r.charged) return AlreadyChargedError(charge.round);
  const int64_t unix = charge.unix != 0 ? charge.unix : NowUnix();
  const int64_t round = static_cast<int64_t>(charge.round);
  FEDLORA_ASSIGN_OR_RETURN(
      Stmt ins, Stmt::Prepare(*db_,
                              "INSERT INTO privacy_charges(round, mechanism, epsilon_after, unix) "
                              "VALUES (?, ?, ?, ?)",
                              op));
  FEDLORA_RETURN_IF_ERROR(ins.BindInt(1, round)
                              .BindBlob(2, charge.mechanism)
                              .BindDouble(3, charge.epsilon_after)
                              .BindInt(4, unix)
                              .Run());
  FEDLORA_ASSIGN_OR_RETURN(
      Stmt part,
      Stmt::Prepare(*db_, "INSERT INTO participants(round, device_id) VALUES (?, ?)", op));
  for (const std::string& id : participants) {
    FEDLORA_RETURN_IF_ERROR(part.Reset().BindInt(1, round).BindText(2, id).Run());
  }
  FEDLORA_ASSIGN_OR_RETURN(
      Stmt up,
      Stmt::Prepare(*db_, "UPDATE rounds SET charged = 1, epsilon_after = ? WHERE round = ?", op));
  FEDLORA_RETURN_IF_ERROR(up.BindDouble(1, charge.epsilon_after).BindInt(2, round).Run());
  return txn->Commit();
}

absl::StatusOr<AdapterVersion> SqliteStore::InsertVersion(uint64_t round,
                                                          const std::string& adapter_sha,
                                                          uint64_t bytes,
                                                          const std::string& optimizer_sha) {
  const char* op = "recording an adapter version";
  FEDLORA_ASSIGN_OR_RETURN(
      Stmt max, Stmt::Prepare(*db_, "SELECT COALESCE(MAX(version), 0) FROM adapter_versions", op));
  FEDLORA_ASSIGN_OR_RETURN(bool row, max.Step());
  AdapterVersion v;
  v.version = static_cast<uint64_t>(row ? max.Int(0) : 0) + 1;
  v.sha256 = adapter_sha;
  v.round = round;
  v.created_unix = NowUnix();
  v.bytes = bytes;
  FEDLORA_ASSIGN_OR_RETURN(
      Stmt ins, Stmt::Prepare(*db_,
                              "INSERT INTO adapter_versions(version, sha256, round, created_unix, "
                              "bytes, optimizer_sha256) VALUES (?, ?, ?, ?, ?, ?)",
                              op));
  ins.BindInt(1, static_cast<int64_t>(v.version))
      .BindText(2, v.sha256)
      .BindInt(4, v.created_unix)
      .BindInt(5, static_cast<int64_t>(v.bytes));
  if (round == 0) {
    ins.BindNull(3);
  } else {
    ins.BindInt(3, static_cast<int64_t>(round));
  }
  if (optimizer_sha.empty()) {
    ins.BindNull(6);
  } else {
    ins.BindText(6, optimizer_sha);
  }
  FEDLORA_RETURN_IF_ERROR(ins.Run());
  return v;
}

absl::StatusOr<AdapterVersion> SqliteStore::CommitRound(uint64_t round, int summed,
                                                        const std::string& adapter_blob,
                                                        const std::string& optimizer_state) {
  FEDLORA_RETURN_IF_ERROR(CheckSummed(round, summed));
  const char* op = "committing a round";
  auto check = [&]() -> absl::Status {
    FEDLORA_ASSIGN_OR_RETURN(RoundRecord r, LoadRound(round));
    return CheckCommittable(r);
  };
  // Check before writing blobs (no stray files for a refused call), and again in the
  // transaction.
  {
    Lock lock(mu_);
    FEDLORA_RETURN_IF_ERROR(check());
  }
  // Blobs first: an orphan blob after a crash is harmless, a row naming a missing blob is not.
  // Their fsyncs run without mu_ (blob files are content-addressed and immutable once named).
  FEDLORA_ASSIGN_OR_RETURN(std::string adapter_sha, PutBlob(adapter_blob));
  std::string optimizer_sha;
  if (!optimizer_state.empty()) {
    FEDLORA_ASSIGN_OR_RETURN(optimizer_sha, PutBlob(optimizer_state));
  }
  Lock lock(mu_);
  FEDLORA_ASSIGN_OR_RETURN(auto txn, Txn::Begin(*db_, op));
  FEDLORA_RETURN_IF_ERROR(check());
  FEDLORA_ASSIGN_OR_RETURN(AdapterVersion v,
                           InsertVersion(round, adapter_sha, adapter_blob.size(), optimizer_sha));
  FEDLORA_ASSIGN_OR_RETURN(
      Stmt up, Stmt::Prepare(*db_,
                             "UPDATE rounds SET state = 'committed', summed = ?, ended_unix = ? "
                             "WHERE round = ?",
                             op));
  FEDLORA_RETURN_IF_ERROR(up.BindInt(1, summed)
                              .BindInt(2, v.created_unix)
                              .BindInt(3, static_cast<int64_t>(round))
                              .Run());
  FEDLORA_RETURN_IF_ERROR(txn->Commit());
  return v;
}

absl::StatusOr<AdapterVersion> SqliteStore::PutInitialAdapter(const std::string& adapter_blob) {
  Lock lock(mu_);
  const char* op = "storing the initial adapter";
  auto check = [&]() -> absl::Status {
    FEDLORA_ASSIGN_OR_RETURN(Stmt st,
                             Stmt::Prepare(*db_, "SELECT COUNT(*) FROM adapter_versions", op));
    FEDLORA_ASSIGN_OR_RETURN(bool row, st.Step());
    if (row && st.Int(0) > 0) return InitialExistsError("the state folder " + dir_, st.Int(0));
    return absl::OkStatus();
  };
  FEDLORA_RETURN_IF_ERROR(check());
  FEDLORA_ASSIGN_OR_RETURN(std::string sha, PutBlob(adapter_blob));
  FEDLORA_ASSIGN_OR_RETURN(auto txn, Txn::Begin(*db_, op));
  FEDLORA_RETURN_IF_ERROR(check());
  FEDLORA_ASSIGN_OR_RETURN(AdapterVersion v, InsertVersion(0, sha, adapter_blob.size(), ""));
  FEDLORA_RETURN_IF_ERROR(txn->Commit());
  return v;
}

absl::StatusOr<std::vector<AdapterVersion>> SqliteStore::QueryVersions(const char* sql) const {
  FEDLORA_ASSIGN_OR_RETURN(Stmt st, Stmt::Prepare(*reader_, sql, "listing adapter versions"));
  std::vector<AdapterVersion> out;
  for (;;) {
    FEDLORA_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    AdapterVersion v;
    v.version = static_cast<uint64_t>(st.Int(0));
    v.sha256 = st.Bytes(1);
    v.round = static_cast<uint64_t>(st.Int(2));
    v.created_unix = st.Int(3);
    v.bytes = static_cast<uint64_t>(st.Int(4));
    out.push_back(std::move(v));
  }
  return out;
}

absl::StatusOr<AdapterVersion> SqliteStore::LatestAdapter() const {
  Lock lock(read_mu_);
  FEDLORA_ASSIGN_OR_RETURN(
      auto versions,
      QueryVersions(absl::StrCat(kVersionColumns, "ORDER BY version DESC LIMIT 1").c_str()));
  if (versions.empty()) return NoAdapterError(dir_);
  return versions.front();
}

absl::StatusOr<std::vector<AdapterVersion>> SqliteStore::ListAdapterVersions() const {
  Lock lock(read_mu_);
  return QueryVersions(absl::StrCat(kVersionColumns, "ORDER BY version").c_str());
}

absl::StatusOr<std::string> SqliteStore::ReadBlob(const std::string& sha256_hex) const {
  // Blob files are immutable once named; no lock needed.
  return internal::ReadBlob(blobs_dir_, sha256_hex);
}

absl::StatusOr<std::string> SqliteStore::OptimizerState() const {
  std::string sha;
  {
    Lock lock(read_mu_);
    FEDLORA_ASSIGN_OR_RETURN(Stmt st, Stmt::Prepare(*reader_,
                                                    "SELECT optimizer_sha256 FROM adapter_versions "
                                                    "ORDER BY version DESC LIMIT 1",
                                                    "reading the optimizer state"));
    FEDLORA_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row || st.IsNull(0)) return std::string();
    sha = st.Bytes(0);
  }
  return internal::ReadBlob(blobs_dir_, sha);
}

}  // namespace fedlora::coordinator::internal
