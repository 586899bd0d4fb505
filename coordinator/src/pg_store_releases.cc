// PgStore: signed releases, their rollout events and what devices report running.
#include "absl/strings/str_cat.h"
#include "fedlora/common/status_macros.h"
#include "pg_store_impl.h"
#include "store_checks.h"

namespace fedlora::coordinator::internal {
namespace {

using Lock = std::lock_guard<std::mutex>;

PgParam U64(uint64_t v) { return PgParam::Int(static_cast<int64_t>(v)); }

}  // namespace

absl::StatusOr<std::vector<ReleaseRecord>> PgStore::QueryReleases(PgConn& conn) {
  FEDLORA_ASSIGN_OR_RETURN(
      PgResult r, conn.ExecRetrying("SELECT version, release_id, segment, base_model_sha256, manifest, "
                            "bundle_sha256, bundle_bytes, published_unix, state, percent, "
                            "rollback FROM releases ORDER BY version",
                            "listing releases"));
  std::vector<ReleaseRecord> out;
  for (int i = 0; i < r.rows(); ++i) {
    ReleaseRecord rec;
    rec.version = static_cast<uint64_t>(r.Int(i, 0));
    rec.release_id = r.Text(i, 1);
    rec.segment = r.Text(i, 2);
    rec.base_model_sha256 = r.Text(i, 3);
    rec.manifest_json = r.Text(i, 4);
    rec.bundle_sha256 = r.Text(i, 5);
    rec.bundle_bytes = static_cast<uint64_t>(r.Int(i, 6));
    rec.published_unix = r.Int(i, 7);
    rec.state = r.Text(i, 8);
    rec.percent = r.Double(i, 9);
    rec.rollback_json = r.Text(i, 10);
    out.push_back(std::move(rec));
  }
  return out;
}

absl::Status PgStore::InsertReleaseEvent(uint64_t version, const std::string& action,
                                         double percent) {
  return writer_
      ->Exec("INSERT INTO release_events(version, action, percent, unix) VALUES ($1, $2, $3, $4)",
             {U64(version), PgParam::Text(action), PgParam::Double(percent),
              PgParam::Int(NowUnix())},
             "recording a release event")
      .status();
}

absl::Status PgStore::PublishRelease(const ReleaseRecord& release, const std::string& bundle) {
  FEDLORA_RETURN_IF_ERROR(CheckReleaseRecord(release));
  Lock lock(mu_);
  const char* op = "publishing a release";
  // The bundle, the release and its "publish" event in one transaction.
  FEDLORA_ASSIGN_OR_RETURN(auto txn, BeginWrite(op));
  FEDLORA_ASSIGN_OR_RETURN(std::vector<ReleaseRecord> existing, QueryReleases(*writer_));
  FEDLORA_RETURN_IF_ERROR(CheckPublishable(existing, release));
  const std::string sha = Sha256Hex(bundle);
  FEDLORA_RETURN_IF_ERROR(PutBlob(sha, bundle, op));
  FEDLORA_RETURN_IF_ERROR(
      writer_
          ->Exec("INSERT INTO releases(version, release_id, segment, base_model_sha256, manifest, "
                 "bundle_sha256, bundle_bytes, published_unix, state, percent, rollback) "
                 "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                 {U64(release.version), PgParam::Text(release.release_id),
                  PgParam::Text(release.segment), PgParam::Text(release.base_model_sha256),
                  PgParam::Text(release.manifest_json), PgParam::Text(sha),
                  U64(bundle.size()),
                  PgParam::Int(release.published_unix ? release.published_unix : NowUnix()),
                  PgParam::Text(release.state), PgParam::Double(release.percent),
                  PgParam::Text(release.rollback_json)},
                 op)
          .status());
  FEDLORA_RETURN_IF_ERROR(InsertReleaseEvent(release.version, "publish", release.percent));
  return txn->Commit();
}

absl::Status PgStore::UpdateRelease(const ReleaseRecord& release, const std::string& action) {
  FEDLORA_RETURN_IF_ERROR(CheckReleaseRecord(release));
  Lock lock(mu_);
  const char* op = "updating a release's rollout";
  FEDLORA_ASSIGN_OR_RETURN(auto txn, BeginWrite(op));
  FEDLORA_ASSIGN_OR_RETURN(
      PgResult r, writer_->Exec("UPDATE releases SET state = $1, percent = $2, rollback = $3 "
                                "WHERE version = $4",
                                {PgParam::Text(release.state), PgParam::Double(release.percent),
                                 PgParam::Text(release.rollback_json), U64(release.version)},
                                op));
  if (r.Affected() != 1) return NoReleaseError(release.version);
  FEDLORA_RETURN_IF_ERROR(InsertReleaseEvent(release.version, action, release.percent));
  return txn->Commit();
}

absl::StatusOr<std::vector<ReleaseRecord>> PgStore::ListReleases() const {
  Lock lock(read_mu_);
  FEDLORA_ASSIGN_OR_RETURN(PgConn * conn, Reader());
  return QueryReleases(*conn);
}

absl::StatusOr<std::vector<ReleaseEvent>> PgStore::ListReleaseEvents() const {
  Lock lock(read_mu_);
  FEDLORA_ASSIGN_OR_RETURN(PgConn * conn, Reader());
  FEDLORA_ASSIGN_OR_RETURN(
      PgResult r, conn->ExecRetrying("SELECT version, action, percent, unix FROM release_events "
                             "ORDER BY id",
                             "listing release events"));
  std::vector<ReleaseEvent> out;
  for (int i = 0; i < r.rows(); ++i) {
    out.push_back({static_cast<uint64_t>(r.Int(i, 0)), r.Text(i, 1), r.Double(i, 2), r.Int(i, 3)});
  }
  return out;
}

absl::Status PgStore::RecordDeviceRelease(const DeviceReleaseReport& report) {
  return RecordDeviceReleases({report});
}

absl::Status PgStore::RecordDeviceReleases(const std::vector<DeviceReleaseReport>& reports) {
  FEDLORA_RETURN_IF_ERROR(CheckReports(reports));
  if (reports.empty()) return absl::OkStatus();
  Lock lock(mu_);
  const char* op = "recording devices' releases";
  FEDLORA_ASSIGN_OR_RETURN(auto txn, BeginWrite(op));
  for (const auto& report : reports) {
    FEDLORA_RETURN_IF_ERROR(
        writer_
            ->Exec("INSERT INTO device_releases(device_id, running_version, fell_back_from, unix) "
                   "VALUES ($1, $2, $3, $4) ON CONFLICT (device_id) DO UPDATE SET "
                   "running_version = excluded.running_version, "
                   "fell_back_from = excluded.fell_back_from, unix = excluded.unix",
                   {PgParam::Text(report.device_id), U64(report.running_version),
                    U64(report.fell_back_from),
                    PgParam::Int(report.unix ? report.unix : NowUnix())},
                   op)
            .status());
  }
  return txn->Commit();
}

absl::StatusOr<std::vector<DeviceReleaseReport>> PgStore::ListDeviceReleases() const {
  Lock lock(read_mu_);
  FEDLORA_ASSIGN_OR_RETURN(PgConn * conn, Reader());
  FEDLORA_ASSIGN_OR_RETURN(
      PgResult r, conn->ExecRetrying("SELECT device_id, running_version, fell_back_from, unix "
                             "FROM device_releases ORDER BY device_id COLLATE \"C\"",
                             "listing device releases"));
  std::vector<DeviceReleaseReport> out;
  for (int i = 0; i < r.rows(); ++i) {
    out.push_back({r.Text(i, 0), static_cast<uint64_t>(r.Int(i, 1)),
                   static_cast<uint64_t>(r.Int(i, 2)), r.Int(i, 3)});
  }
  return out;
}

}  // namespace fedlora::coordinator::internal
