#include "coordinator_options.h"

namespace fedlora::sim {

coordinator::CoordinatorOptions CoordinatorOptionsFor(const SimConfig& c,
                                                      const coordinator::PrivacyRecipe& r,
                                                      const std::string& base_sha) {
  coordinator::CoordinatorOptions o;
  o.recipe = r;
  o.optimizer.kind = c.server_optimizer;
  o.optimizer.lr = c.server_lr;
  o.optimizer.beta1 = c.server_beta1;
  o.optimizer.beta2 = c.server_beta2;
  o.optimizer.eps = c.server_eps;
  o.lora_method = ParseLoraMethod(c.lora_method).value_or(LoraMethod::kLora);  // validated
  o.max_rounds = 0;  // the simulation decides when to stop
  o.training.set_steps(static_cast<uint32_t>(c.local_steps));
  o.training.set_batch_size(static_cast<uint32_t>(c.local_batch));
  o.training.set_seq_len(static_cast<uint32_t>(c.seq_len));
  o.training.set_lr(c.local_lr);
  o.training.set_min_examples(1);
  // A fixed window from each round's opening (every check-in in it gets a coin); the
  // simulated devices check in within its first half.
  o.selection_window = absl::Seconds(1);
  // On a cluster (grpc.cluster) edges flip coins from the window they read every 200 ms and
  // stop 200 ms before its end: a longer window keeps most of it open to the devices.
  if (c.transport == Transport::kGrpc && c.grpc_cluster) o.selection_window = absl::Seconds(3);
  o.train_deadline = absl::Seconds(300);
  o.phase_deadline = absl::Seconds(15);
  o.retry_min = absl::ZeroDuration();
  o.retry_max = absl::Seconds(1);
  o.graph =
      c.graph == GraphMode::kComplete ? proto::SECAGG_GRAPH_COMPLETE : proto::SECAGG_GRAPH_KREGULAR;
  o.base_model_sha256 = base_sha;
  return o;
}

}  // namespace fedlora::sim
