#include "fedlora/coordinator/pinned_params.h"

#include "absl/strings/str_cat.h"
#include "fedlora/common/status_macros.h"

namespace fedlora::coordinator {

nlohmann::json PinnedPrivacyParams(const CoordinatorOptions& o) {
  const PrivacyRecipe& r = o.recipe;
  nlohmann::json j = nlohmann::json::object();
  j["mode"] = static_cast<int>(r.mode);
  j["sampling"] = r.sampling == privacy::Sampling::kPoisson ? "poisson" : "fixed";
  j["sampling_rate"] = SamplingRate(r);
  j["population"] = r.population;
  j["expected_cohort"] = r.expected_cohort;
  j["max_cohort"] = MaxCohort(r);  // sizes the DDG headroom: part of every round's mechanism
  j["noise_multiplier"] = r.noise_multiplier;
  j["clip"] = r.clip;
  j["adaptive_clip"] = r.adaptive_clip;
  j["target_quantile"] = r.target_quantile;
  j["clip_lr"] = r.clip_lr;
  j["bits"] = r.bits;
  j["min_survivors"] = r.min_survivors;
  j["modclip_prob"] = r.modclip_prob;
  j["delta"] = r.delta;
  j["epsilon_budget"] = r.epsilon_budget;
  // What devices share (sets the mechanism's dimension) and the server step (its moments are
  // part of the run's state). Written only when not the default, so folders pinned before
  // these keys existed (lora, fedavg) still match.
  if (o.lora_method != LoraMethod::kLora) j["lora_method"] = LoraMethodName(o.lora_method);
  // Sharding sets every device's noise (each shard's minimum): pinned when on.
  if (r.max_shard_size != 0) j["max_shard_size"] = r.max_shard_size;
  if (o.optimizer.kind != ServerOptimizerKind::kFedAvg) {
    j["server_optimizer"] = ServerOptimizerName(o.optimizer.kind);
    j["server_beta1"] = o.optimizer.beta1;
    j["server_beta2"] = o.optimizer.beta2;
    j["server_eps"] = o.optimizer.eps;
  }
  return j;
}

absl::Status PinPrivacyParams(Store& store, const CoordinatorOptions& options) {
  if (store.GetMeta(kPinnedPrivacyKey).ok()) {
    return absl::AlreadyExistsError(
        "coordinator store: privacy parameters are already pinned for this population");
  }
  return store.PutMeta(kPinnedPrivacyKey, PinnedPrivacyParams(options).dump());
}

absl::Status CheckPinnedPrivacyParams(Store& store, const CoordinatorOptions& options,
                                      bool* pinned_now) {
  if (pinned_now) *pinned_now = false;
  auto stored = store.GetMeta(kPinnedPrivacyKey);
  if (!stored.ok()) {
    if (stored.status().code() != absl::StatusCode::kNotFound) return stored.status();
    // A folder from before pinning: what it runs with now is what it keeps.
    FEDLORA_RETURN_IF_ERROR(PinPrivacyParams(store, options));
    if (pinned_now) *pinned_now = true;
    return absl::OkStatus();
  }
  const nlohmann::json pinned = nlohmann::json::parse(*stored, nullptr, false);
  if (pinned.is_discarded() || !pinned.is_object()) {
    return absl::DataLossError(
        "coordinator store: the pinned privacy parameters are not readable JSON (hint: the "
        "database is damaged; restore it from a backup)");
  }
  const nlohmann::json now = PinnedPrivacyParams(options);
  std::string diff;
  for (auto it = now.begin(); it != now.end(); ++it) {
    const nlohmann::json was = pinned.contains(it.key()) ? pinned[it.key()] : nlohmann::json();
    if (was != *it) {
      absl::StrAppend(&diff, diff.empty() ? "" : ", ", it.key(), " ", was.dump(), " -> ",
                      it->dump());
    }
  }
  for (auto it = pinned.begin(); it != pinned.end(); ++it) {
    if (!now.contains(it.key()))
      absl::StrAppend(&diff, diff.empty() ? "" : ", ", it.key(), " removed");
  }
  if (diff.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "coordinator.json changes privacy parameters pinned when this population was created (", diff,
      "); every charged round was priced with the pinned values (hint: restore them in "
      "coordinator.json, or start a new population with `fedlora coordinator init --state "
      "NEWDIR`, whose devices enrol afresh)"));
}

}  // namespace fedlora::coordinator
