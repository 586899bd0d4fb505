// Internal: the SQLite implementation of coordinator::Store (see store.h for the contract).
// sqlite_store_open.cc creates the folder and schema; sqlite_store.cc implements the methods.
//
// Two connections to the same WAL database: `db_` for every write (one BEGIN IMMEDIATE
// transaction per call, serialized by mu_), and `reader_` for every const method (serialized
// by read_mu_). A WAL reader never waits for a writer, so the reads on the hot paths
// (authentication's GetDevice, GetRelease's ListReleases and GetMeta) keep their latency while
// a write and its fsync are in progress; each read sees every write that returned before it.
// Blob files are written and fsynced before mu_ is taken.
#ifndef FEDLORA_COORDINATOR_SRC_SQLITE_STORE_IMPL_H_
#define FEDLORA_COORDINATOR_SRC_SQLITE_STORE_IMPL_H_

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "fedlora/coordinator/store.h"
#include "blob_dir.h"
#include "sqlite_db.h"

namespace fedlora::coordinator::internal {

class SqliteStore final : public Store {
 public:
  SqliteStore(std::string dir, std::unique_ptr<SqliteDb> db, std::unique_ptr<SqliteDb> reader)
      : dir_(std::move(dir)),
        blobs_dir_(dir_ + "/blobs"),
        db_(std::move(db)),
        reader_(std::move(reader)) {}

  absl::Status AddEnrollmentTokens(const std::vector<std::string>& token_sha256_hex) override;
  absl::Status EnrollDevice(const std::string& token_sha256_hex,
                            const DeviceRecord& device) override;
  absl::StatusOr<DeviceRecord> GetDevice(const std::string& device_id) const override;
  absl::StatusOr<std::vector<DeviceRecord>> ListDevices() const override;
  absl::Status RevokeDevice(const std::string& device_id, const std::string& reason) override;
  absl::StatusOr<int> CountUnusedTokens() const override;
  absl::Status CheckTokenUnused(const std::string& token_sha256_hex) const override;

  absl::Status BeginRound(uint64_t round, int selected) override;
  absl::Status SetRoundPhase(uint64_t round, const std::string& phase) override;
  absl::Status AbortRound(uint64_t round, const std::string& reason) override;
  absl::Status ChargeRound(const PrivacyCharge& charge,
                           const std::vector<std::string>& participants) override;
  absl::StatusOr<AdapterVersion> CommitRound(uint64_t round, int summed,
                                             const std::string& adapter_blob,
                                             const std::string& optimizer_state) override;
  absl::StatusOr<AdapterVersion> PutInitialAdapter(const std::string& adapter_blob) override;
  absl::StatusOr<AdapterVersion> LatestAdapter() const override;
  absl::StatusOr<std::vector<AdapterVersion>> ListAdapterVersions() const override;
  absl::StatusOr<std::string> ReadBlob(const std::string& sha256_hex) const override;
  absl::StatusOr<std::string> OptimizerState() const override;
  absl::StatusOr<std::vector<RoundRecord>> ListRounds() const override;
  absl::StatusOr<std::vector<RoundRecord>> RunningRounds() const override;
  absl::StatusOr<std::vector<PrivacyCharge>> Charges() const override;
  absl::StatusOr<std::map<std::string, int>> ParticipationCounts() const override;
  absl::StatusOr<std::map<uint64_t, std::vector<std::string>>> ParticipantsByRound() const override;

  absl::Status PublishRelease(const ReleaseRecord& release, const std::string& bundle) override;
  absl::Status UpdateRelease(const ReleaseRecord& release, const std::string& action) override;
  absl::StatusOr<std::vector<ReleaseRecord>> ListReleases() const override;
  absl::StatusOr<std::vector<ReleaseEvent>> ListReleaseEvents() const override;
  absl::Status RecordDeviceRelease(const DeviceReleaseReport& report) override;
  absl::Status RecordDeviceReleases(const std::vector<DeviceReleaseReport>& reports) override;
  absl::StatusOr<std::vector<DeviceReleaseReport>> ListDeviceReleases() const override;

  absl::Status PutMeta(const std::string& key, const std::string& value) override;
  absl::StatusOr<std::string> GetMeta(const std::string& key) const override;

 private:
  // Callers hold mu_ (db_) or read_mu_ (reader_: QueryRounds, QueryVersions).
  absl::StatusOr<RoundRecord> LoadRound(uint64_t round) const;
  absl::StatusOr<std::vector<RoundRecord>> QueryRounds(const char* sql) const;
  absl::StatusOr<std::vector<AdapterVersion>> QueryVersions(const char* sql) const;
  absl::StatusOr<std::vector<ReleaseRecord>> QueryReleases(SqliteDb& db) const;
  absl::Status InsertReleaseEvent(uint64_t version, const std::string& action, double percent);
  // NOT_FOUND / FAILED_PRECONDITION unless `round` exists and is running.
  absl::StatusOr<RoundRecord> LoadRunningRound(uint64_t round, absl::string_view action) const;
  // Writes the blob(s), then inserts the next adapter version for `round` (0 = initial) inside
  // an open transaction.
  absl::StatusOr<AdapterVersion> InsertVersion(uint64_t round, const std::string& adapter_sha,
                                               uint64_t bytes, const std::string& optimizer_sha);

  // WriteBlob under blob_mu_: two writers of the same content in this process would share
  // its temporary file name. Taken alone (CommitRound) or inside mu_, never the other way.
  absl::StatusOr<std::string> PutBlob(absl::string_view bytes) {
    std::lock_guard<std::mutex> lock(blob_mu_);
    return WriteBlob(blobs_dir_, bytes);
  }

  const std::string dir_;
  const std::string blobs_dir_;
  mutable std::mutex mu_;       // db_: writes
  std::unique_ptr<SqliteDb> db_;
  std::mutex blob_mu_;
  mutable std::mutex read_mu_;  // reader_: const methods
  std::unique_ptr<SqliteDb> reader_;
};

}  // namespace fedlora::coordinator::internal

#endif  // FEDLORA_COORDINATOR_SRC_SQLITE_STORE_IMPL_H_
