#include "fedlora/secagg/server.h"

#include "derivations.h"
#include "fedlora/common/status_macros.h"
#include "server_r0_advertise_keys_state.h"
#include "server_state.h"

namespace fedlora::secagg {

SecAggServer::SecAggServer() = default;
SecAggServer::~SecAggServer() = default;

absl::StatusOr<std::unique_ptr<SecAggServer>> SecAggServer::Create(
    const proto::SecAggSessionConfig& config, SendToDevicesInterface* sender, int threads) {
  FEDLORA_RETURN_IF_ERROR(ValidateSessionConfig(config));
  FEDLORA_ASSIGN_OR_RETURN(NeighbourGraph graph, NeighbourGraph::Create(config));
  std::unique_ptr<SecAggServer> s(new SecAggServer());
  s->ctx_ = std::make_unique<ServerContext>();
  s->ctx_->config = config;
  s->ctx_->graph = std::move(graph);
  s->ctx_->sender = sender;
  s->ctx_->threads = threads < 1 ? 1 : threads;
  s->ctx_->devices.resize(config.num_devices());
  s->state_ = std::make_unique<ServerR0AdvertiseKeysState>(s->ctx_.get());
  return s;
}

absl::Status SecAggServer::HandleMessage(const proto::SecAggDeviceMessage& message) {
  return state_->HandleMessage(message);
}

absl::Status SecAggServer::ProceedToNextPhase() {
  FEDLORA_ASSIGN_OR_RETURN(state_, state_->Proceed());
  return absl::OkStatus();
}

Phase SecAggServer::phase() const { return state_->phase(); }
int SecAggServer::NumPending() const { return state_->NumPending(); }

absl::Status SecAggServer::abort_status() const {
  if (state_->phase() != Phase::kAborted) return absl::OkStatus();
  return static_cast<const ServerAbortedState*>(state_.get())->status();
}

absl::StatusOr<std::vector<uint32_t>> SecAggServer::TakeSum() {
  if (state_->phase() != Phase::kCompleted) {
    return absl::FailedPreconditionError("secagg: the round has not completed");
  }
  return std::move(static_cast<ServerCompletedState*>(state_.get())->sum());
}

std::vector<uint32_t> SecAggServer::IncludedDevices() const {
  if (state_->phase() != Phase::kCompleted) return {};
  return static_cast<const ServerCompletedState*>(state_.get())->included();
}

const proto::SecAggSessionConfig& SecAggServer::config() const { return ctx_->config; }
const std::string& SecAggServer::session_id() const { return ctx_->session_id; }

DeviceOutcome SecAggServer::Outcome(uint32_t device) const {
  DeviceOutcome out;
  if (device >= ctx_->devices.size()) return out;
  const auto& rec = ctx_->devices[device];
  out.included_in_sum = rec.in_u3 && state_->phase() == Phase::kCompleted;
  out.dropped_in = rec.dropped ? rec.dropped_in : Phase::kCompleted;
  out.reason = rec.reason;
  out.detail = rec.detail;
  return out;
}

std::array<int, kNumDropReasons> SecAggServer::drop_counts() const { return ctx_->drop_counts; }
int SecAggServer::rejected_unknown_device() const { return ctx_->rejected_unknown_device; }

}  // namespace fedlora::secagg
