// Internal: the PostgreSQL implementation of coordinator::Store (store.h has the contract;
// docs/coordinator.md, "Multi-host (in progress)", the design). pg_store.cc: enrolment, meta,
// opening; pg_store_rounds.cc: rounds, charges, adapter versions and blobs;
// pg_store_releases.cc: releases.
//
// Two connections, as SqliteStore has: `writer_` for every write (one transaction per call
// under the store's advisory write lock and, with a fence, the lease check; serialized in this
// process by mu_) and `reader_` for the const methods (read_mu_), so reads on the hot paths do
// not wait behind a write. A lost connection is re-established at the next call.
#ifndef FEDLORA_COORDINATOR_SRC_PG_STORE_IMPL_H_
#define FEDLORA_COORDINATOR_SRC_PG_STORE_IMPL_H_

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "fedlora/coordinator/store.h"
#include "pg_conn.h"

namespace fedlora::coordinator::internal {

class PgStore final : public Store {
 public:
  PgStore(std::unique_ptr<PgConn> writer, std::unique_ptr<PgConn> reader,
          std::optional<StoreFence> fence)
      : writer_(std::move(writer)), reader_(std::move(reader)), fence_(std::move(fence)) {}

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
  // A write transaction on writer_ (caller holds mu_): the write lock, then the fence.
  absl::StatusOr<std::unique_ptr<PgTxn>> BeginWrite(absl::string_view op) {
    return PgTxn::Begin(*writer_, op, fence_);
  }
  // reader_, reconnected if needed (caller holds read_mu_).
  absl::StatusOr<PgConn*> Reader() const;

  // Inside a write transaction (mu_ held).
  absl::StatusOr<RoundRecord> LoadRound(uint64_t round);
  absl::Status PutBlob(const std::string& sha, const std::string& bytes, absl::string_view op);
  absl::StatusOr<AdapterVersion> InsertVersion(uint64_t round, const std::string& adapter_blob,
                                               const std::string& optimizer_state);
  absl::Status InsertReleaseEvent(uint64_t version, const std::string& action, double percent);
  // Reads on `conn` (mu_ or read_mu_ held, matching the connection).
  static absl::StatusOr<std::vector<RoundRecord>> QueryRounds(PgConn& conn, const char* sql);
  static absl::StatusOr<std::vector<AdapterVersion>> QueryVersions(PgConn& conn, const char* sql);
  static absl::StatusOr<std::vector<ReleaseRecord>> QueryReleases(PgConn& conn);

  mutable std::mutex mu_;  // writer_
  std::unique_ptr<PgConn> writer_;
  mutable std::mutex read_mu_;  // reader_
  std::unique_ptr<PgConn> reader_;
  const std::optional<StoreFence> fence_;
};

}  // namespace fedlora::coordinator::internal

#endif  // FEDLORA_COORDINATOR_SRC_PG_STORE_IMPL_H_
