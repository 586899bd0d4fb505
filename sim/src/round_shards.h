// How many secure-aggregation sessions (shards, coordinator/shard_plan.h) a round ran and the
// survivors each needed, read from the tasks the coordinator handed out (each names its shard
// and that shard's minimum), for the two engines that run a real coordinator: the in-process
// round engine and the gRPC rehearsal.
#ifndef FEDLORA_SIM_SRC_ROUND_SHARDS_H_
#define FEDLORA_SIM_SRC_ROUND_SHARDS_H_

#include <algorithm>

#include "fedlora/proto/fedlora_v1.pb.h"
#include "fedlora/sim/report.h"

namespace fedlora::sim {

// Notes one sampled device's task: every sampled device gets one, and every shard holds at
// least two devices, so after all tasks `rec->shards` is the round's number of sessions.
inline void NoteTaskShard(const v1::Task& task, RoundRecord* rec) {
  rec->shards = std::max(rec->shards, static_cast<int>(task.shard()) + 1);
  rec->shard_min = static_cast<int>(task.shard_min_survivors());
}

// Adds a finished round's shards to the run's summary.
inline void NoteRoundShards(const RoundRecord& rec, Summary* summary) {
  summary->shards_per_round.push_back(rec.shards);
  if (rec.shard_min > 0) summary->shard_min = rec.shard_min;
}

}  // namespace fedlora::sim

#endif  // FEDLORA_SIM_SRC_ROUND_SHARDS_H_
