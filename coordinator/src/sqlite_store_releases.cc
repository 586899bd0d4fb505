// SqliteStore: signed releases, their rollout events and what devices report running.
#include "absl/strings/str_cat.h"
#include "blob_dir.h"
#include "fedlora/common/status_macros.h"
#include "sqlite_store_impl.h"
#include "store_checks.h"

namespace fedlora::coordinator::internal {
namespace {

using Lock = std::lock_guard<std::mutex>;

}  // namespace

absl::StatusOr<std::vector<ReleaseRecord>> SqliteStore::QueryReleases(SqliteDb& db) const {
  FEDLORA_ASSIGN_OR_RETURN(
      Stmt st, Stmt::Prepare(db,
                             "SELECT version, release_id, segment, base_model_sha256, manifest, "
                             "bundle_sha256, bundle_bytes, published_unix, state, percent, "
                             "rollback FROM releases ORDER BY version",
                             "listing releases"));
  std::vector<ReleaseRecord> out;
  for (;;) {
    FEDLORA_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    ReleaseRecord r;
    r.version = static_cast<uint64_t>(st.Int(0));
    r.release_id = st.Bytes(1);
    r.segment = st.Bytes(2);
    r.base_model_sha256 = st.Bytes(3);
    r.manifest_json = st.Bytes(4);
    r.bundle_sha256 = st.Bytes(5);
    r.bundle_bytes = static_cast<uint64_t>(st.Int(6));
    r.published_unix = st.Int(7);
    r.state = st.Bytes(8);
    r.percent = st.Double(9);
    r.rollback_json = st.Bytes(10);
    out.push_back(std::move(r));
  }
  return out;
}

absl::Status SqliteStore::InsertReleaseEvent(uint64_t version, const std::string& action,
                                             double percent) {
  FEDLORA_ASSIGN_OR_RETURN(
      Stmt st, Stmt::Prepare(*db_,
                             "INSERT INTO release_events(version, action, percent, unix) "
                             "VALUES (?, ?, ?, ?)",
                             "recording a release event"));
  return st.BindInt(1, static_cast<int64_t>(version))
      .BindText(2, action)
      .BindDouble(3, percent)
      .BindInt(4, NowUnix())
      .Run();
}

absl::Status SqliteStore::PublishRelease(const ReleaseRecord& release, const std::string& bundle) {
  FEDLORA_RETURN_IF_ERROR(CheckReleaseRecord(release));
  const char* op = "publishing a release";
  Lock lock(mu_);
  // The blob first (content-addressed: harmless if the transaction below fails).
  FEDLORA_ASSIGN_OR_RETURN(std::string sha, PutBlob(bundle));
  FEDLORA_ASSIGN_OR_RETURN(auto txn, Txn::Begin(*db_, op));
  FEDLORA_ASSIGN_OR_RETURN(std::vector<ReleaseRecord> existing, QueryReleases(*db_));
  FEDLORA_RETURN_IF_ERROR(CheckPublishable(existing, release));
  FEDLORA_ASSIGN_OR_RETURN(
      Stmt st, Stmt::Prepare(*db_,
                             "INSERT INTO releases(version, release_id, segment, "
                             "base_model_sha256, manifest, bundle_sha256, bundle_bytes, "
                             "published_unix, state, percent, rollback) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             op));
  FEDLORA_RETURN_IF_ERROR(st.BindInt(1, static_cast<int64_t>(release.version))
                              .BindText(2, release.release_id)
                              .BindText(3, release.segment)
                              .BindText(4, release.base_model_sha256)
                              .BindText(5, release.manifest_json)
                              .BindText(6, sha)
                              .BindInt(7, static_cast<int64_t>(bundle.size()))
                              .BindInt(8, release.published_unix ? release.published_unix : NowUnix())
                              .BindText(9, release.state)
                              .BindDouble(10, release.percent)
                              .BindText(11, release.rollback_json)
                              .Run());
  FEDLORA_RETURN_IF_ERROR(InsertReleaseEvent(release.version, "publish", release.percent));
  return txn->Commit();
}

absl::Status SqliteStore::UpdateRelease(const ReleaseRecord& release, const std::string& action) {
  FEDLORA_RETURN_IF_ERROR(CheckReleaseRecord(release));
  const char* op = "updating a release's rollout";
  Lock lock(mu_);
  FEDLORA_ASSIGN_OR_RETURN(auto txn, Txn::Begin(*db_, op));
  FEDLORA_ASSIGN_OR_RETURN(
      Stmt st, Stmt::Prepare(*db_,
                             "UPDATE releases SET state = ?, percent = ?, rollback = ? "
                             "WHERE version = ?",
                             op));
  FEDLORA_RETURN_IF_ERROR(st.BindText(1, release.state)
                              .BindDouble(2, release.percent)
                              .BindText(3, release.rollback_json)
                              .BindInt(4, static_cast<int64_t>(release.version))
                              .Run());
  if (st.Changes() != 1) return NoReleaseError(release.version);
  FEDLORA_RETURN_IF_ERROR(InsertReleaseEvent(release.version, action, release.percent));
  return txn->Commit();
}

absl::StatusOr<std::vector<ReleaseRecord>> SqliteStore::ListReleases() const {
  Lock lock(read_mu_);
  return QueryReleases(*reader_);
}

absl::StatusOr<std::vector<ReleaseEvent>> SqliteStore::ListReleaseEvents() const {
  Lock lock(read_mu_);
  FEDLORA_ASSIGN_OR_RETURN(
      Stmt st, Stmt::Prepare(*reader_,
                             "SELECT version, action, percent, unix FROM release_events "
                             "ORDER BY id",
                             "listing release events"));
  std::vector<ReleaseEvent> out;
  for (;;) {
    FEDLORA_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    out.push_back({static_cast<uint64_t>(st.Int(0)), st.Bytes(1), st.Double(2), st.Int(3)});
  }
  return out;
}

absl::Status SqliteStore::RecordDeviceRelease(const DeviceReleaseReport& report) {
  return RecordDeviceReleases({report});
}

absl::Status SqliteStore::RecordDeviceReleases(const std::vector<DeviceReleaseReport>& reports) {
  FEDLORA_RETURN_IF_ERROR(CheckReports(reports));
  if (reports.empty()) return absl::OkStatus();
  Lock lock(mu_);
  const char* op = "recording devices' releases";
  FEDLORA_ASSIGN_OR_RETURN(auto txn, Txn::Begin(*db_, op));
  FEDLORA_ASSIGN_OR_RETURN(
      Stmt st, Stmt::Prepare(*db_,
                             "INSERT INTO device_releases(device_id, running_version, "
                             "fell_back_from, unix) VALUES (?, ?, ?, ?) ON CONFLICT(device_id) "
                             "DO UPDATE SET running_version = excluded.running_version, "
                             "fell_back_from = excluded.fell_back_from, unix = excluded.unix",
                             op));
  for (const auto& report : reports) {
    FEDLORA_RETURN_IF_ERROR(st.Reset()
                                .BindText(1, report.device_id)
                                .BindInt(2, static_cast<int64_t>(report.running_version))
                                .BindInt(3, static_cast<int64_t>(report.fell_back_from))
                                .BindInt(4, report.unix ? report.unix : NowUnix())
                                .Run());
  }
  return txn->Commit();
}

absl::StatusOr<std::vector<DeviceReleaseReport>> SqliteStore::ListDeviceReleases() const {
  Lock lock(read_mu_);
  FEDLORA_ASSIGN_OR_RETURN(
      Stmt st, Stmt::Prepare(*reader_,
                             "SELECT device_id, running_version, fell_back_from, unix "
                             "FROM device_releases ORDER BY device_id",
                             "listing device releases"));
  std::vector<DeviceReleaseReport> out;
  for (;;) {
    FEDLORA_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    out.push_back({st.Bytes(0), static_cast<uint64_t>(st.Int(1)),
                   static_cast<uint64_t>(st.Int(2)), st.Int(3)});
  }
  return out;
}

}  // namespace fedlora::coordinator::internal
