// privacy::RoundPrivacyParams <-> fedlora.v1.PrivacyParams, the form a round's privacy
// parameters travel in from the coordinator to devices.
#ifndef FEDLORA_PRIVACY_PARAMS_WIRE_H_
#define FEDLORA_PRIVACY_PARAMS_WIRE_H_

#include "absl/status/statusor.h"
#include "fedlora/privacy/prepare_update.h"
#include "fedlora/proto/fedlora_v1.pb.h"

namespace fedlora::privacy {

v1::PrivacyParams ParamsToProto(const RoundPrivacyParams& params);

// INVALID_ARGUMENT naming the field when the message is inconsistent
// (ValidateRoundPrivacyParams) or out of range; a device must refuse such a task.
absl::StatusOr<RoundPrivacyParams> ParamsFromProto(const v1::PrivacyParams& message);

}  // namespace fedlora::privacy

#endif  // FEDLORA_PRIVACY_PARAMS_WIRE_H_
