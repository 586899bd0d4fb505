#include "fedlora/coordinator/coordinator_config.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "fedlora/common/status_macros.h"

namespace fedlora::coordinator {

nlohmann::json CoordinatorOptionsToJson(const CoordinatorOptions& o) {
  const PrivacyRecipe& r = o.recipe;
  return {
      {"goal", r.expected_cohort},
      {"population", r.population},
      {"sampling_rate", r.poisson_rate},
      {"max_cohort", r.max_cohort},
      {"noise_multiplier", r.noise_multiplier},
      {"clip", r.clip},
      {"adaptive_clip", r.adaptive_clip},
      {"target_quantile", r.target_quantile},
      {"clip_lr", r.clip_lr},
      {"bits", r.bits},
      {"min_survivors", r.min_survivors},
      {"max_shard_size", r.max_shard_size},
      {"delta", r.delta},
      {"epsilon_budget", r.epsilon_budget},
      {"server_lr", o.optimizer.lr},
      {"server_optimizer", ServerOptimizerName(o.optimizer.kind)},
      {"server_beta1", o.optimizer.beta1},
      {"server_beta2", o.optimizer.beta2},
      {"server_eps", o.optimizer.eps},
      {"lora_method", LoraMethodName(o.lora_method)},
      {"rounds", o.max_rounds},
      {"steps", o.training.steps()},
      {"batch_size", o.training.batch_size()},
      {"seq_len", o.training.seq_len()},
      {"lr", o.training.lr()},
      {"min_examples", o.training.min_examples()},
      {"selection_window_s", absl::ToDoubleSeconds(o.selection_window)},
      {"train_deadline_s", absl::ToDoubleSeconds(o.train_deadline)},
      {"phase_deadline_s", absl::ToDoubleSeconds(o.phase_deadline)},
      {"retry_min_s", absl::ToDoubleSeconds(o.retry_min)},
      {"retry_max_s", absl::ToDoubleSeconds(o.retry_max)},
      {"graph", o.graph == proto::SECAGG_GRAPH_COMPLETE ? "complete" : "kregular"},
      {"base_model_sha256", o.base_model_sha256},
  };
}

absl::StatusOr<CoordinatorOptions> CoordinatorOptionsFromJson(const nlohmann::json& j) {
  if (!j.is_object()) return absl::InvalidArgumentError("coordinator config: not a JSON object");
  CoordinatorOptions o;
  o.recipe.mode = privacy::DpMode::kDistributed;
  o.recipe.sampling = privacy::Sampling::kPoisson;
  o.training.set_steps(20);
  o.training.set_batch_size(8);
  o.training.set_seq_len(64);
  o.training.set_lr(2e-3);
  o.training.set_min_examples(1);
  const nlohmann::json defaults = CoordinatorOptionsToJson(o);
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "over_selection" || it.key() == "selection_timeout_s") {
      return absl::InvalidArgumentError(absl::StrCat(
          "coordinator config: \"", it.key(),
          "\" is no longer used: selection is Poisson sampling over a fixed window "
          "(hint: delete the key; set sampling_rate, max_cohort and selection_window_s)"));
    }
    if (!defaults.contains(it.key())) {
      return absl::InvalidArgumentError(
          absl::StrCat("coordinator config: unknown key \"", it.key(), "\""));
    }
    const auto& d = defaults[it.key()];
    const bool ok = d.is_string() ? it->is_string()
                    : d.is_boolean() ? it->is_boolean()
                                     : it->is_number();
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat("coordinator config: \"", it.key(),
                                                     "\" has the wrong type (", it->type_name(),
                                                     ")"));
    }
  }
  auto get = [&](const char* key) { return j.contains(key) ? j[key] : defaults[key]; };
  PrivacyRecipe& r = o.recipe;
  r.expected_cohort = get("goal").get<int>();
  r.population = get("population").get<int>();
  r.poisson_rate = get("sampling_rate").get<double>();
  r.max_cohort = get("max_cohort").get<int>();
  r.noise_multiplier = get("noise_multiplier").get<double>();
  r.clip = get("clip").get<double>();
  r.adaptive_clip = get("adaptive_clip").get<bool>();
  r.target_quantile = get("target_quantile").get<double>();
  r.clip_lr = get("clip_lr").get<double>();
  r.bits = get("bits").get<int>();
  r.min_survivors = get("min_survivors").get<double>();
  r.max_shard_size = get("max_shard_size").get<int>();
  r.delta = get("delta").get<double>();
  r.epsilon_budget = get("epsilon_budget").get<double>();
  o.optimizer.lr = get("server_lr").get<double>();
  const std::string opt = get("server_optimizer").get<std::string>();
  const auto kind = ParseServerOptimizer(opt);
  if (!kind) {
    return absl::InvalidArgumentError(absl::StrCat(
        "coordinator config: \"server_optimizer\" is fedavg, fedadam or fedyogi (got \"", opt,
        "\")"));
  }
  o.optimizer.kind = *kind;
  o.optimizer.beta1 = get("server_beta1").get<double>();
  o.optimizer.beta2 = get("server_beta2").get<double>();
  o.optimizer.eps = get("server_eps").get<double>();
  if (!(o.optimizer.beta1 >= 0 && o.optimizer.beta1 < 1 && o.optimizer.beta2 >= 0 &&
        o.optimizer.beta2 < 1 && o.optimizer.eps > 0)) {
    return absl::InvalidArgumentError(
        "coordinator config: server_beta1 and server_beta2 must be in [0, 1), server_eps > 0");
  }
  auto method = ParseLoraMethod(get("lora_method").get<std::string>());
  if (!method.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("coordinator config: \"lora_method\": ", method.status().message()));
  }
  o.lora_method = *method;
  o.max_rounds = get("rounds").get<int>();
  o.training.set_steps(get("steps").get<uint32_t>());
  o.training.set_batch_size(get("batch_size").get<uint32_t>());
  o.training.set_seq_len(get("seq_len").get<uint32_t>());
  o.training.set_lr(get("lr").get<double>());
  o.training.set_min_examples(get("min_examples").get<uint32_t>());
  o.selection_window = absl::Seconds(get("selection_window_s").get<double>());
  o.train_deadline = absl::Seconds(get("train_deadline_s").get<double>());
  o.phase_deadline = absl::Seconds(get("phase_deadline_s").get<double>());
  o.retry_min = absl::Seconds(get("retry_min_s").get<double>());
  o.retry_max = absl::Seconds(get("retry_max_s").get<double>());
  const std::string graph = get("graph").get<std::string>();
  if (graph != "complete" && graph != "kregular") {
    return absl::InvalidArgumentError("coordinator config: \"graph\" is complete or kregular");
  }
  o.graph = graph == "complete" ? proto::SECAGG_GRAPH_COMPLETE : proto::SECAGG_GRAPH_KREGULAR;
  o.base_model_sha256 = get("base_model_sha256").get<std::string>();
  if (!(o.selection_window > absl::ZeroDuration())) {
    return absl::InvalidArgumentError("coordinator config: \"selection_window_s\" must be > 0");
  }
  if (o.retry_max < o.retry_min) {
    return absl::InvalidArgumentError("coordinator config: retry_max_s < retry_min_s");
  }
  if (o.training.steps() == 0 || o.training.batch_size() == 0 || o.training.seq_len() < 2) {
    return absl::InvalidArgumentError(
        "coordinator config: steps and batch_size must be >= 1, seq_len >= 2");
  }
  r.dim = 1;  // set from the adapter when the run starts
  absl::Status s = ValidateRecipe(r);
  if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat("coordinator config: ", s.message()));
  if (r.max_cohort == 0) r.max_cohort = DefaultMaxCohort(r);  // 0 = derived from q and N
  if (r.max_cohort < std::max(2, MinClients(r))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "coordinator config: \"max_cohort\" ", r.max_cohort, " is below the minimum cohort ",
        std::max(2, MinClients(r)), " (hint: raise max_cohort; 0 derives it from the rate)"));
  }
  return o;
}

}  // namespace fedlora::coordinator
