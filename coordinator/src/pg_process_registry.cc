// OpenProcessRegistry: the `processes` table (pg_schema.cc) and the lease epoch, on the
// database clock.
#include <mutex>

#include "absl/strings/str_cat.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/coordinator/process_registry.h"
#include "pg_conn.h"

namespace fedlora::coordinator {
namespace {

using internal::PgConn;
using internal::PgParam;
using internal::PgResult;

bool KnownRole(const std::string& role) {
  return role == kRoleLeader || role == kRoleStandby || role == kRoleEdge ||
         role == kRoleAggregator;
}

class PgProcessRegistry final : public ProcessRegistry {
 public:
  explicit PgProcessRegistry(std::unique_ptr<PgConn> conn) : conn_(std::move(conn)) {}

  absl::Status Heartbeat(const ProcessRecord& r) override {
    if (r.id.empty()) return absl::InvalidArgumentError("process registry: empty process id");
    if (!KnownRole(r.role)) {
      return absl::InvalidArgumentError(
          absl::StrCat("process registry: unknown role '", r.role,
                       "' (one of leader, standby, edge, aggregator)"));
    }
    std::lock_guard<std::mutex> lock(mu_);
    FEDLORA_RETURN_IF_ERROR(conn_->EnsureConnected());
    // One statement: the row appears, or is renewed, atomically. `started` survives renewals
    // of the same process (host and pid unchanged).
    return conn_
        ->Exec(
            "INSERT INTO processes(id, role, address, metrics_address, host, pid, version, "
            "started, heartbeat) VALUES ($1, $2, $3, $4, $5, $6, $7, now(), now()) "
            "ON CONFLICT (id) DO UPDATE SET role = excluded.role, address = excluded.address, "
            "metrics_address = excluded.metrics_address, version = excluded.version, "
            "started = CASE WHEN processes.host = excluded.host AND processes.pid = "
            "excluded.pid THEN processes.started ELSE excluded.started END, "
            "host = excluded.host, pid = excluded.pid, heartbeat = excluded.heartbeat",
            {PgParam::Text(r.id), PgParam::Text(r.role), PgParam::Text(r.address),
             PgParam::Text(r.metrics_address), PgParam::Text(r.host), PgParam::Int(r.pid),
             PgParam::Text(r.version)},
            "renewing a process's heartbeat")
        .status();
  }

  absl::Status Remove(const std::string& id) override {
    std::lock_guard<std::mutex> lock(mu_);
    FEDLORA_RETURN_IF_ERROR(conn_->EnsureConnected());
    return conn_
        ->Exec("DELETE FROM processes WHERE id = $1", {PgParam::Text(id)},
               "removing a process from the registry")
        .status();
  }

  absl::StatusOr<std::vector<RegisteredProcess>> List() override {
    std::lock_guard<std::mutex> lock(mu_);
    FEDLORA_ASSIGN_OR_RETURN(
        PgResult r,
        conn_->ExecRetrying("SELECT id, role, address, metrics_address, host, pid, version, "
                            "EXTRACT(EPOCH FROM heartbeat - started)::float8, "
                            "EXTRACT(EPOCH FROM now() - heartbeat)::float8 FROM processes ORDER BY "
                            "array_position(ARRAY['leader','standby','edge','aggregator'], role), "
                            "id COLLATE \"C\"",
                            "listing the registered processes"));
    std::vector<RegisteredProcess> out;
    for (int i = 0; i < r.rows(); ++i) {
      RegisteredProcess p;
      p.record = ProcessRecord{r.Text(i, 0), r.Text(i, 1), r.Text(i, 2), r.Text(i, 3),
                               r.Text(i, 4), r.Int(i, 5),  r.Text(i, 6)};
      p.uptime_seconds = r.Double(i, 7);
      p.heartbeat_age_seconds = r.Double(i, 8);
      out.push_back(std::move(p));
    }
    return out;
  }

  absl::StatusOr<int> Prune(std::chrono::seconds age) override {
    std::lock_guard<std::mutex> lock(mu_);
    FEDLORA_RETURN_IF_ERROR(conn_->EnsureConnected());
    FEDLORA_ASSIGN_OR_RETURN(PgResult r,
                             conn_->Exec("DELETE FROM processes WHERE heartbeat < "
                                         "now() - $1::bigint * interval '1 second' RETURNING id",
                                         {PgParam::Int(age.count())}, "pruning gone processes"));
    return r.rows();
  }

  absl::StatusOr<std::vector<std::string>> Live(std::chrono::milliseconds max_age) override {
    std::lock_guard<std::mutex> lock(mu_);
    FEDLORA_ASSIGN_OR_RETURN(
        PgResult r,
        conn_->ExecRetrying("SELECT address FROM processes WHERE role = 'aggregator' AND "
                            "heartbeat > now() - $1::bigint * interval '1 millisecond' "
                            "ORDER BY address COLLATE \"C\"",
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

absl::StatusOr<std::unique_ptr<ProcessRegistry>> OpenProcessRegistry(const std::string& conninfo) {
  FEDLORA_ASSIGN_OR_RETURN(auto conn, internal::PgConn::Connect(conninfo, {}));
  FEDLORA_RETURN_IF_ERROR(internal::EnsurePgSchema(*conn));
  return std::unique_ptr<ProcessRegistry>(new PgProcessRegistry(std::move(conn)));
}

absl::StatusOr<std::unique_ptr<AggregatorRegistry>> OpenAggregatorRegistry(
    const std::string& conninfo) {
  FEDLORA_ASSIGN_OR_RETURN(auto registry, OpenProcessRegistry(conninfo));
  return std::unique_ptr<AggregatorRegistry>(std::move(registry));
}

}  // namespace fedlora::coordinator
