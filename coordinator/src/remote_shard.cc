#include "fedlora/coordinator/remote_shard.h"

namespace fedlora::coordinator {

v1::RunShardRequest ShardSpecToProto(const ShardSpec& spec) {
  v1::RunShardRequest r;
  r.set_round(spec.round);
  r.set_shard(spec.shard);
  *r.mutable_session() = spec.session;
  for (const std::string& d : spec.devices) r.add_devices(d);
  r.set_advertise_deadline_ms(
      static_cast<uint32_t>(absl::ToInt64Milliseconds(spec.advertise_deadline)));
  r.set_phase_deadline_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(spec.phase_deadline)));
  return r;
}

ShardSpec ShardSpecFromProto(const v1::RunShardRequest& r) {
  ShardSpec spec;
  spec.round = r.round();
  spec.shard = r.shard();
  spec.session = r.session();
  spec.devices.assign(r.devices().begin(), r.devices().end());
  spec.advertise_deadline = absl::Milliseconds(r.advertise_deadline_ms());
  spec.phase_deadline = absl::Milliseconds(r.phase_deadline_ms());
  return spec;
}

}  // namespace fedlora::coordinator
