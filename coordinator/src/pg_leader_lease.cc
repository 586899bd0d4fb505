// OpenLeaderLease: the lease row of a population, renewed on the database clock.
#include <mutex>

#include "absl/strings/str_cat.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/coordinator/leader_lease.h"
#include "pg_conn.h"

namespace fedlora::coordinator {
namespace {

using internal::PgConn;
using internal::PgParam;
using internal::PgResult;
using Clock = std::chrono::steady_clock;
using Lock = std::lock_guard<std::mutex>;

class PgLeaderLease final : public LeaderLease {
 public:
  PgLeaderLease(std::unique_ptr<PgConn> conn, std::string population)
      : conn_(std::move(conn)), population_(std::move(population)) {}

  absl::StatusOr<bool> TryAcquire(const std::string& holder,
                                  std::chrono::milliseconds ttl) override {
    if (holder.empty()) {
      return absl::InvalidArgumentError("leader lease: the holder needs a name");
    }
    if (ttl < std::chrono::milliseconds(100)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "leader lease: a ttl of ", ttl.count(), " ms is too short (hint: a few seconds)"));
    }
    Lock lock(mu_);
    const Clock::time_point start = Clock::now();
    FEDLORA_RETURN_IF_ERROR(conn_->EnsureConnected());
    // Takes the row only if absent or expired; the epoch grows by one with every takeover.
    absl::StatusOr<PgResult> r = conn_->Exec(
        "INSERT INTO leader_leases(population, holder, epoch, acquired_at, expires_at) "
        "VALUES ($1, $2, 1, now(), now() + $3::bigint * interval '1 millisecond') "
        "ON CONFLICT (population) DO UPDATE SET holder = excluded.holder, "
        "epoch = leader_leases.epoch + 1, acquired_at = excluded.acquired_at, "
        "expires_at = excluded.expires_at WHERE leader_leases.expires_at <= now() "
        "RETURNING epoch",
        {PgParam::Text(population_), PgParam::Text(holder), PgParam::Int(ttl.count())},
        "acquiring the leader lease");
    if (absl::IsAborted(r.status())) return false;  // a writer holds the row: not now
    if (!r.ok()) return r.status();
    if (r->rows() == 0) return false;
    holder_ = holder;
    ttl_ = ttl;
    epoch_ = static_cast<uint64_t>(r->Int(0, 0));
    valid_until_ = start + ttl;
    return true;
  }

  absl::Status Renew() override {
    Lock lock(mu_);
    if (epoch_ == 0) {
      return absl::FailedPreconditionError(
          "leader lease: Renew before a successful TryAcquire (hint: acquire the lease first)");
    }
    const Clock::time_point start = Clock::now();
    FEDLORA_RETURN_IF_ERROR(conn_->EnsureConnected());
    FEDLORA_ASSIGN_OR_RETURN(
        PgResult r,
        conn_->Exec("UPDATE leader_leases SET expires_at = now() + $3::bigint * interval "
                    "'1 millisecond' WHERE population = $1 AND epoch = $2 RETURNING epoch",
                    {PgParam::Text(population_), PgParam::Int(static_cast<int64_t>(epoch_)),
                     PgParam::Int(ttl_.count())},
                    "renewing the leader lease"));
    if (r.rows() == 1) {
      valid_until_ = start + ttl_;
      return absl::OkStatus();
    }
    absl::StatusOr<LeaseInfo> now = CurrentLocked();
    return absl::FailedPreconditionError(absl::StrCat(
        "fenced: this process's leadership (epoch ", epoch_, ") was taken over by epoch ",
        now.ok() ? now->epoch : 0, " (holder '", now.ok() ? now->holder : "?",
        "') of population '", population_, "'; step down"));
  }

  absl::Status Release() override {
    Lock lock(mu_);
    if (epoch_ == 0) return absl::OkStatus();
    FEDLORA_RETURN_IF_ERROR(conn_->EnsureConnected());
    FEDLORA_RETURN_IF_ERROR(
        conn_->Exec("UPDATE leader_leases SET expires_at = now() "
                    "WHERE population = $1 AND epoch = $2 AND expires_at > now()",
                    {PgParam::Text(population_), PgParam::Int(static_cast<int64_t>(epoch_))},
                    "releasing the leader lease")
            .status());
    valid_until_ = Clock::time_point();
    return absl::OkStatus();
  }

  uint64_t epoch() const override {
    Lock lock(mu_);
    return epoch_;
  }
  StoreFence fence() const override {
    Lock lock(mu_);
    return StoreFence{population_, epoch_};
  }
  Clock::time_point valid_until() const override {
    Lock lock(mu_);
    return valid_until_;
  }
  absl::StatusOr<LeaseInfo> Current() const override {
    Lock lock(mu_);
    FEDLORA_RETURN_IF_ERROR(conn_->EnsureConnected());
    return CurrentLocked();
  }

 private:
  absl::StatusOr<LeaseInfo> CurrentLocked() const {
    FEDLORA_ASSIGN_OR_RETURN(
        PgResult r, conn_->Exec("SELECT holder, epoch, "
                                "EXTRACT(EPOCH FROM expires_at - now())::float8 "
                                "FROM leader_leases WHERE population = $1",
                                {PgParam::Text(population_)}, "reading the leader lease"));
    if (r.rows() == 0) {
      return absl::NotFoundError(absl::StrCat("leader lease: population '", population_,
                                              "' has never had a leader"));
    }
    return LeaseInfo{population_, r.Text(0, 0), static_cast<uint64_t>(r.Int(0, 1)),
                     r.Double(0, 2)};
  }

  mutable std::mutex mu_;
  std::unique_ptr<PgConn> conn_;
  const std::string population_;
  std::string holder_;
  std::chrono::milliseconds ttl_{0};
  uint64_t epoch_ = 0;
  Clock::time_point valid_until_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<LeaderLease>> OpenLeaderLease(const std::string& conninfo,
                                                             const std::string& population) {
  if (population.empty()) {
    return absl::InvalidArgumentError("leader lease: empty population name");
  }
  // A takeover waits at most a second for a writer that holds the lease row (FOR SHARE).
  FEDLORA_ASSIGN_OR_RETURN(auto conn,
                           internal::PgConn::Connect(conninfo, {{"lock_timeout", "1000"}}));
  FEDLORA_RETURN_IF_ERROR(internal::EnsurePgSchema(*conn));
  return std::unique_ptr<LeaderLease>(new PgLeaderLease(std::move(conn), population));
}

}  // namespace fedlora::coordinator
