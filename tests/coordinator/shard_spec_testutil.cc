#include "shard_spec_testutil.h"

#include <string>

namespace fedlora::coordinator {

ShardSpec ThreeDeviceShard(uint64_t round, uint32_t shard, absl::Duration advertise_deadline,
                           absl::Duration phase_deadline) {
  ShardSpec spec;
  spec.round = round;
  spec.shard = shard;
  spec.session.set_num_devices(3);
  spec.session.set_threshold(2);
  spec.session.set_min_sum_devices(2);
  spec.session.set_dim(4);
  spec.session.set_bits(8);
  spec.session.set_graph(proto::SECAGG_GRAPH_COMPLETE);
  spec.session.set_degree(2);
  spec.session.set_round_nonce(std::string(32, 'n'));
  spec.session.set_graph_seed(std::string(32, 's'));
  spec.devices = {"a", "b", "c"};
  spec.advertise_deadline = advertise_deadline;
  spec.phase_deadline = phase_deadline;
  return spec;
}

}  // namespace fedlora::coordinator
