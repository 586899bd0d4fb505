#include "derivations.h"

#include "absl/strings/str_cat.h"
#include "fedlora/secagg/graph.h"
#include "fedlora/secagg/key_agreement.h"

namespace fedlora::secagg {
namespace {

void AppendU32(std::string* s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s->push_back(static_cast<char>(v >> (8 * i)));
}
void AppendU64(std::string* s, uint64_t v) {
  for (int i = 0; i < 8; ++i) s->push_back(static_cast<char>(v >> (8 * i)));
}
void AppendBytes(std::string* s, const std::string& b) {
  AppendU32(s, static_cast<uint32_t>(b.size()));
  s->append(b);
}

}  // namespace

absl::Status ValidateSessionConfig(const proto::SecAggSessionConfig& config) {
  if (config.round_nonce().size() != 32) {
    return absl::InvalidArgumentError("secagg: round nonce must be 32 bytes");
  }
  if (config.bits() < 1 || config.bits() > 32) {
    return absl::InvalidArgumentError(
        absl::StrCat("secagg: bits = ", config.bits(), ", expected 1..32"));
  }
  if (config.dim() < 1) return absl::InvalidArgumentError("secagg: dim must be >= 1");
  auto graph = NeighbourGraph::Create(config);
  if (!graph.ok()) return graph.status();
  if (config.threshold() < 2 || config.threshold() > config.degree() + 1) {
    return absl::InvalidArgumentError(absl::StrCat("secagg: threshold ", config.threshold(),
                                                   " not in [2, degree + 1 = ", config.degree() + 1,
                                                   "]"));
  }
  if (config.min_sum_devices() > config.num_devices()) {
    return absl::InvalidArgumentError(absl::StrCat("secagg: min_sum_devices ",
                                                   config.min_sum_devices(), " exceeds the ",
                                                   config.num_devices(), " devices"));
  }
  return absl::OkStatus();
}

KeyListHasher::KeyListHasher() : buf_("fedlora-secagg-keys-v1") {}

void KeyListHasher::Add(uint32_t device, const std::string& enc_pk, const std::string& mask_pk) {
  AppendU32(&buf_, device);
  AppendBytes(&buf_, enc_pk);
  AppendBytes(&buf_, mask_pk);
}

std::string KeyListHasher::Finish() { return Sha256(buf_); }

std::string ComputeSessionId(const proto::SecAggSessionConfig& config,
                             const std::string& key_list_digest) {
  std::string s = "fedlora-secagg-session-v1";
  AppendBytes(&s, config.round_nonce());
  AppendU32(&s, config.num_devices());
  AppendU32(&s, config.threshold());
  AppendU32(&s, config.bits());
  AppendU64(&s, config.dim());
  AppendU32(&s, static_cast<uint32_t>(config.graph()));
  AppendU32(&s, config.degree());
  AppendBytes(&s, config.graph_seed());
  AppendU32(&s, config.min_sum_devices());
  AppendBytes(&s, key_list_digest);
  return Sha256(s);
}

Secret32 ShareEncryptionKey(const Secret32& dh, const std::string& session_id, uint32_t sender,
                            uint32_t receiver) {
  std::string info = "fedlora-secagg share encryption";
  AppendU32(&info, sender);
  AppendU32(&info, receiver);
  return HkdfSha256(dh, session_id, info);
}

std::string ShareAad(const std::string& session_id, uint32_t sender, uint32_t receiver) {
  std::string aad = "fedlora-secagg share";
  AppendBytes(&aad, session_id);
  AppendU32(&aad, sender);
  AppendU32(&aad, receiver);
  return aad;
}

Secret32 PairwiseMaskSeed(const Secret32& dh, const std::string& session_id, uint32_t u,
                          uint32_t v) {
  std::string info = "fedlora-secagg pairwise mask";
  AppendU32(&info, u < v ? u : v);
  AppendU32(&info, u < v ? v : u);
  return HkdfSha256(dh, session_id, info);
}

}  // namespace fedlora::secagg
