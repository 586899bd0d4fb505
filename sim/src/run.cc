#include "fedlora/sim/run.h"

#include <filesystem>

#include "fedlora/sim/report.h"

namespace fedlora::sim {

absl::StatusOr<SimResult> RunSimulation(const SimConfig& c, const RunOptions& options) {
  if (auto s = ValidateConfig(c); !s.ok()) return s;
  if (c.transport == Transport::kGrpc && options.fedlora_binary.empty()) {
    return absl::InvalidArgumentError(
        "run.transport = grpc needs the fedlora binary to start the coordinator from (CLI: "
        "itself; Python: fedlora.simulate(..., fedlora_binary=PATH))");
  }
  if (auto s = PrepareOutputDir(c.out, options.force); !s.ok()) return s;
  auto report = ReportWriter::Open(c.out);
  if (!report.ok()) return report.status();
  if (options.on_checked) options.on_checked();
  auto simulator = Simulator::Create(c);
  if (!simulator.ok()) return simulator.status();
  if (options.on_ready) options.on_ready(**simulator);
  absl::Status write_status;
  auto on_round = [&](const RoundRecord& r) {
    if (write_status.ok()) write_status = report->AppendRound(r);
    if (options.on_round) options.on_round(r);
  };
  auto result = c.transport == Transport::kGrpc
                    ? (*simulator)->RunOverGrpc({options.fedlora_binary}, on_round)
                    : (*simulator)->Run(on_round);
  if (!result.ok()) return result.status();
  if (!write_status.ok()) return write_status;
  const std::string adapter_dir = (std::filesystem::path(c.out) / "global_adapter").string();
  if (auto s = (*simulator)->SaveAdapter(result->global_adapter, adapter_dir); !s.ok()) return s;
  result->summary.adapter_dir = adapter_dir;
  result->summary.base_model_dir = (*simulator)->model_dir();
  result->summary.base_model_scheme = (*simulator)->base_description();
  if (auto s = report->Finish(result->summary); !s.ok()) return s;
  return result;
}

}  // namespace fedlora::sim
