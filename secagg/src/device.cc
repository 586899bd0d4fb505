#include "fedlora/secagg/device.h"

#include "absl/strings/str_cat.h"
#include "derivations.h"
#include "device_r0_advertise_keys_state.h"
#include "device_state.h"
#include "fedlora/common/status_macros.h"
#include "fedlora/secagg/graph.h"

namespace fedlora::secagg {

SecAggDevice::SecAggDevice() = default;
SecAggDevice::~SecAggDevice() = default;

absl::StatusOr<std::unique_ptr<SecAggDevice>> SecAggDevice::Create(
    uint32_t id, const proto::SecAggSessionConfig& config, SendToServerInterface* sender,
    RandomSource* rng) {
  FEDLORA_RETURN_IF_ERROR(ValidateSessionConfig(config));
  if (id >= config.num_devices()) {
    return absl::InvalidArgumentError(
        absl::StrCat("secagg: device id ", id, " outside [0, ", config.num_devices(), ")"));
  }
  FEDLORA_ASSIGN_OR_RETURN(NeighbourGraph graph, NeighbourGraph::Create(config));
  std::unique_ptr<SecAggDevice> dev(new SecAggDevice());
  dev->ctx_ = std::make_unique<DeviceContext>();
  dev->ctx_->id = id;
  dev->ctx_->config = config;
  dev->ctx_->neighbours = graph.Neighbours(id);
  dev->ctx_->sender = sender;
  dev->ctx_->rng = rng;
  dev->state_ = std::make_unique<DeviceR0AdvertiseKeysState>(dev->ctx_.get());
  return dev;
}

absl::Status SecAggDevice::SetInput(std::vector<uint32_t> input) {
  const auto& cfg = ctx_->config;
  if (input.size() != cfg.dim()) {
    return absl::InvalidArgumentError(absl::StrCat("secagg: device ", ctx_->id, " input has ",
                                                   input.size(), " entries, expected ", cfg.dim()));
  }
  if (cfg.bits() < 32) {
    const uint32_t limit = uint32_t{1} << cfg.bits();
    for (size_t i = 0; i < input.size(); ++i) {
      if (input[i] >= limit) {
        return absl::InvalidArgumentError(absl::StrCat("secagg: device ", ctx_->id, " input[", i,
                                                       "] = ", input[i], " >= 2^", cfg.bits()));
      }
    }
  }
  ctx_->input = std::move(input);
  ctx_->has_input = true;
  return absl::OkStatus();
}

absl::Status SecAggDevice::Transition(absl::StatusOr<std::unique_ptr<DeviceState>> next) {
  if (next.ok()) {
    state_ = std::move(next).value();
    return absl::OkStatus();
  }
  abort_reason_ = std::string(next.status().message());
  if (state_->phase() != Phase::kAborted && state_->phase() != Phase::kCompleted) {
    proto::SecAggDeviceMessage abort;
    abort.mutable_abort()->set_reason(abort_reason_);
    ctx_->Send(abort);
  }
  state_ = std::make_unique<DeviceAbortedState>(ctx_.get(), abort_reason_);
  return next.status();
}

absl::Status SecAggDevice::Start() {
  if (state_->phase() != Phase::kAdvertiseKeys) return state_->Start().status();
  return Transition(state_->Start());
}

absl::Status SecAggDevice::HandleMessage(const proto::SecAggServerMessage& message) {
  if (state_->phase() == Phase::kAborted) {
    return absl::FailedPreconditionError(
        absl::StrCat("secagg: device ", ctx_->id, " already aborted: ", abort_reason_));
  }
  if (state_->phase() == Phase::kCompleted) {
    return absl::FailedPreconditionError(
        absl::StrCat("secagg: device ", ctx_->id, " already completed the round; message ignored"));
  }
  if (message.has_abort()) {
    abort_reason_ = absl::StrCat("server aborted the round: ", message.abort().reason());
    state_ = std::make_unique<DeviceAbortedState>(ctx_.get(), abort_reason_);
    return absl::OkStatus();
  }
  return Transition(state_->HandleMessage(message));
}

uint32_t SecAggDevice::id() const { return ctx_->id; }
Phase SecAggDevice::phase() const { return state_->phase(); }

}  // namespace fedlora::secagg
