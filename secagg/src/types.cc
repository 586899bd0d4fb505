#include "fedlora/secagg/types.h"

namespace fedlora::secagg {

const char* PhaseName(Phase phase) {
  switch (phase) {
    case Phase::kAdvertiseKeys:
      return "advertise_keys";
    case Phase::kShareKeys:
      return "share_keys";
    case Phase::kMaskedInput:
      return "masked_input";
    case Phase::kUnmasking:
      return "unmasking";
    case Phase::kCompleted:
      return "completed";
    case Phase::kAborted:
      return "aborted";
  }
  return "unknown";
}

const char* DropReasonName(DropReason reason) {
  switch (reason) {
    case DropReason::kNone:
      return "none";
    case DropReason::kNoResponse:
      return "no_response";
    case DropReason::kDeviceAborted:
      return "device_aborted";
    case DropReason::kMalformedMessage:
      return "malformed_message";
    case DropReason::kWrongVectorLength:
      return "wrong_vector_length";
    case DropReason::kWrongSession:
      return "wrong_session";
    case DropReason::kUnexpectedMessage:
      return "unexpected_message";
    case DropReason::kDuplicateMessage:
      return "duplicate_message";
  }
  return "unknown";
}

}  // namespace fedlora::secagg
