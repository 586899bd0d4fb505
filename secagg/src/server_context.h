// State shared by the server's protocol states (internal): per-device records, the graph,
// the session id and the transport.
#ifndef FEDLORA_SECAGG_SRC_SERVER_CONTEXT_H_
#define FEDLORA_SECAGG_SRC_SERVER_CONTEXT_H_

#include <array>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "fedlora/proto/secagg.pb.h"
#include "fedlora/secagg/graph.h"
#include "fedlora/secagg/shamir.h"
#include "fedlora/secagg/types.h"

namespace fedlora::secagg {

struct ServerDeviceRecord {
  bool dropped = false;
  Phase dropped_in = Phase::kCompleted;
  DropReason reason = DropReason::kNone;
  std::string detail;
  // Membership of U1..U4 (Bonawitz et al.): the message of that round was accepted.
  bool advertised = false, shared = false, masked = false, unmasked = false;
  // Fixed when a phase closes: U1 = keys were sent out; U2 = shares were forwarded;
  // U3 = input is in the sum.
  bool in_u1 = false, in_u2 = false, in_u3 = false;
  std::string enc_pk, mask_pk;
  std::vector<proto::SecAggEncryptedShare> outgoing_shares;  // R1 upload, until forwarded
  std::string packed_input;                                  // R2 upload, until summed
  // R3 upload: (owner, share) pairs.
  std::vector<std::pair<uint32_t, ShamirShare>> self_shares, key_shares;

  bool AdvertisedAndActive() const { return advertised && !dropped; }
};

struct ServerContext {
  proto::SecAggSessionConfig config;
  NeighbourGraph graph;
  SendToDevicesInterface* sender = nullptr;
  int threads = 1;  // for the final unmasking
  std::string session_id;
  std::vector<ServerDeviceRecord> devices;
  std::array<int, kNumDropReasons> drop_counts{};
  int rejected_unknown_device = 0;
  std::vector<uint32_t> sum;  // sum of masked inputs of U3 (mod 2^32), from R2's Proceed on

  // Marks `device` dropped in `phase` (idempotent) and returns `status` for the caller.
  absl::Status Drop(uint32_t device, Phase phase, DropReason reason, absl::Status status);
  // Stamps the session id and sends.
  void Send(uint32_t device, proto::SecAggServerMessage& message);
  // Sends ServerAbort to every device not yet dropped.
  void BroadcastAbort(const std::string& reason);
  // u's neighbours, ascending (excluding u).
  std::vector<uint32_t> Neighbours(uint32_t u) const { return graph.Neighbours(u); }
};

}  // namespace fedlora::secagg

#endif  // FEDLORA_SECAGG_SRC_SERVER_CONTEXT_H_
