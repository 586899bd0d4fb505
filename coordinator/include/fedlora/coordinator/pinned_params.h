// Pinned privacy parameters: what a population's epsilon depends on (delta, the noise recipe,
// the sampling rate, the population, the budget), with the LoRA method (what devices share) and
// the server optimizer (whose moments are part of the run), is written to the store once, at
// `coordinator init`, and every later run must use exactly those values. Re-reading
// coordinator.json on each run must never let an edit (a larger delta, less noise) silently
// re-price rounds already charged; changing them means starting a new population (a new state
// folder: its devices enrol afresh and the old ledger stays as it was).
#ifndef FEDLORA_COORDINATOR_PINNED_PARAMS_H_
#define FEDLORA_COORDINATOR_PINNED_PARAMS_H_

#include "absl/status/status.h"
#include "fedlora/coordinator/round_manager.h"
#include "fedlora/coordinator/store.h"
#include "nlohmann/json.hpp"

namespace fedlora::coordinator {

// The store's meta key holding the pinned parameters (JSON).
inline constexpr char kPinnedPrivacyKey[] = "pinned_privacy";

// The privacy-relevant part of `options` as JSON (stable key order; numbers as given).
nlohmann::json PinnedPrivacyParams(const CoordinatorOptions& options);

// Writes PinnedPrivacyParams(options) to the store. ALREADY_EXISTS when parameters are pinned
// already (pinning is once per population).
absl::Status PinPrivacyParams(Store& store, const CoordinatorOptions& options);

// OK when the store's pinned parameters equal `options`'. A state folder made before pinning
// existed (no pinned value) is pinned now, with `*pinned_now` set so the caller can log it.
// FAILED_PRECONDITION naming every differing key (pinned -> now) with the hint to restore the
// pinned values or start a new population; DATA_LOSS when the pinned value is not JSON.
absl::Status CheckPinnedPrivacyParams(Store& store, const CoordinatorOptions& options,
                                      bool* pinned_now = nullptr);

}  // namespace fedlora::coordinator

#endif  // FEDLORA_COORDINATOR_PINNED_PARAMS_H_
