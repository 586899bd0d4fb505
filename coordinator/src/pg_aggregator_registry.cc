// OpenAggregatorRegistry: the `aggregators` table and the lease epoch, on the database clock.
#include <mutex>

#include "absl/strings/str_cat.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/coordinator/aggregator_registry.h"
#include "pg_conn.h"

namespace fedlora::coordinator {
namespace {

using internal::PgConn;
using internal::PgParam;
using internal::PgResult;

class PgAggregatorRegistry final : public AggregatorRegistry {
 public:
  explicit PgAggregatorRegistry(std::unique_ptr<PgConn> conn) : conn_(std::move(conn)) {}

  absl::Status Heartbeat(const std::string& address) override {
    if (address.empty()) {
      return absl::InvalidArgumentError("aggregator registry: empty address");
    }
    std::lock_guard<std::mutex> lock(mu_);
    FEDLORA_RETURN_IF_ERROR(conn_->EnsureConnected());
    return conn_
        ->Exec(
            "INSERT INTO aggregators(address, heartbeat) VALUES ($1, now()) "
            "ON CONFLICT (address) DO UPDATE SET heartbeat = excluded.heartbeat",
            {PgParam::Text(address)}, "renewing the aggregator's heartbeat")
        .status();
  }

  absl::Status Remove(const std::string& address) override {
    std::lock_guard<std::mutex> lock(mu_);
    FEDLORA_RETURN_IF_ERROR(conn_->EnsureConnected());
    return conn_
        ->Exec("DELETE FROM aggregators WHERE address = $1", {PgParam::Text(address)},
               "removing an aggregator")
        .status();
  }

  absl::StatusOr<std::vector<std::string>> Live(std::chrono::milliseconds max_age) override {
    std::lock_guard<std::mutex> lock(mu_);
    FEDLORA_ASSIGN_OR_RETURN(
        PgResult r,
        conn_->ExecRetrying("SELECT address FROM aggregators WHERE heartbeat > "
                            "now() - $1::bigint * interval '1 millisecond' "
                            "ORDER BY address",
                            {PgParam::Int(max_age.count())}, "listing live aggregators"));
    std::vector<std::string> out;
    for (int i = 0; i < r.rows(); ++i) out.push_back(r.Text(i, 0));
    return out;
  }

  absl::StatusOr<uint64_t> LeaseEpoch(const std::string& population) override {
    std::lock_guard<std::mutex> lock(mu_);
    FEDLORA_ASSIGN_OR_RETURN(
        PgResult r, conn_->ExecRetrying("SELECT epoch FROM leader_leases WHERE population = $1",
                                        {PgParam::Text(population)}, "reading the lease epoch"));
    return r.rows() == 0 ? uint64_t{0} : static_cast<uint64_t>(r.Int(0, 0));
  }

 private:
  std::mutex mu_;
  std::unique_ptr<PgConn> conn_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<AggregatorRegistry>> OpenAggregatorRegistry(
    const std::string& conninfo) {
  // No NOTICE on stderr for CREATE TABLE IF NOT EXISTS of a table that exists.
  FEDLORA_ASSIGN_OR_RETURN(
      auto conn, internal::PgConn::Connect(conninfo, {{"client_min_messages", "warning"}}));
  FEDLORA_RETURN_IF_ERROR(internal::EnsurePgSchema(*conn));
  // Two processes creating it at once: one of them sees a unique violation on the catalog.
  absl::Status made = conn->Exec(
                              "CREATE TABLE IF NOT EXISTS aggregators ("
                              "address text PRIMARY KEY, heartbeat timestamptz NOT NULL)",
                              "creating the aggregators table")
                          .status();
  if (!made.ok() && !absl::IsAlreadyExists(made)) return made;
  return std::unique_ptr<AggregatorRegistry>(new PgAggregatorRegistry(std::move(conn)));
}

}  // namespace fedlora::coordinator
