// The leader credential of a multi-host population (docs/coordinator.md, "Aggregator
// processes"): who may start a shard at an aggregator.
//
// `coordinator init --store` draws a 32-byte cluster key from the CSPRNG into
// <state>/cluster.key (64 hex digits, mode 0600; `coordinator cluster-key` adds one to a folder
// made before). Every coordinator process of the population has it, because the multi-host
// folder is copied to every coordinator host (for its TLS key and store file); no device ever
// gets it (devices get tls/ca.pem only). The leader sends each fedlora.v1.Aggregator/RunShard
// with HMAC-SHA256(key, kRunShardMacLabel || the request's deterministic serialization) in
// the call's metadata (kLeaderMacMetadata), so the MAC covers every field of the request
// (population, epoch, round, shard, session, devices, deadlines); the aggregator checks it in
// constant time before it reads anything else, and refuses UNAUTHENTICATED. TLS alone
// authenticates the aggregator to the caller, never the caller.
#ifndef FEDLORA_COORDINATOR_CLUSTER_KEY_H_
#define FEDLORA_COORDINATOR_CLUSTER_KEY_H_

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fedlora/proto/fedlora_v1.pb.h"

namespace fedlora::coordinator {

inline constexpr char kClusterKeyFile[] = "cluster.key";
inline constexpr size_t kClusterKeyBytes = 32;
// gRPC metadata key of the MAC ("-bin": binary value).
inline constexpr char kLeaderMacMetadata[] = "fedlora-leader-mac-bin";
// Domain separation: a MAC of this key over anything else never verifies as a RunShard's.
inline constexpr std::string_view kRunShardMacLabel = "fedlora.v1.Aggregator/RunShard mac v1";

// Writes a fresh key (SecureRandom) to <state_dir>/cluster.key, mode 0600 from its first byte.
// ALREADY_EXISTS when the folder has one (a second key would lock out the processes that hold
// the first).
absl::Status CreateClusterKey(const std::string& state_dir);

// The 32 key bytes of <state_dir>/cluster.key. FAILED_PRECONDITION, naming the command that
// adds one, when the file is absent (a folder made before leader credentials); the
// private-file checks' FAILED_PRECONDITION when group or others may read it; DATA_LOSS when it
// is not 64 hex digits.
absl::StatusOr<std::string> ReadClusterKey(const std::string& state_dir);

// HMAC-SHA256(key, kRunShardMacLabel || request.SerializeDeterministic()), 32 bytes. INTERNAL
// if OpenSSL or the serialization fails.
absl::StatusOr<std::string> RunShardMac(std::string_view key, const v1::RunShardRequest& request);

// OK when `mac` is RunShardMac(key, request), compared in constant time. UNAUTHENTICATED when
// it is absent or differs, with a message that says what to do; INTERNAL if OpenSSL fails.
absl::Status CheckRunShardMac(std::string_view key, const v1::RunShardRequest& request,
                              const std::optional<std::string>& mac);

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_CLUSTER_KEY_H_
