#include "fedlora/coordinator/selection_window.h"

#include "absl/strings/str_cat.h"
#include "fedlora/common/encoding.h"
#include "nlohmann/json.hpp"

namespace fedlora::coordinator {

std::string SelectionWindowToJson(const SelectionWindow& w) {
  nlohmann::json j = {{"round", w.round},
                      {"state", w.state},
                      {"opened_ms", w.opened_ms},
                      {"end_ms", w.end_ms},
                      {"retry_after_ms", w.retry_after_ms},
                      {"q", w.q},
                      {"coin_key", HexEncode(w.coin_key)},
                      {"retry_min_ms", w.retry_min_ms},
                      {"retry_max_ms", w.retry_max_ms},
                      {"base_model_sha256", w.base_model_sha256},
                      {"min_examples", w.min_examples},
                      {"detail", w.detail},
                      {"leader", w.leader},
                      {"leader_tls", w.leader_tls}};
  return j.dump();
}

absl::StatusOr<SelectionWindow> SelectionWindowFromJson(const std::string& json) {
  auto j = nlohmann::json::parse(json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("the published selection window is not a JSON object");
  }
  SelectionWindow w;
  try {
    w.round = j.at("round").get<uint64_t>();
    w.state = j.at("state").get<std::string>();
    w.opened_ms = j.at("opened_ms").get<int64_t>();
    w.end_ms = j.at("end_ms").get<int64_t>();
    w.retry_after_ms = j.at("retry_after_ms").get<int64_t>();
    w.q = j.at("q").get<double>();
    w.retry_min_ms = j.at("retry_min_ms").get<int64_t>();
    w.retry_max_ms = j.at("retry_max_ms").get<int64_t>();
    w.base_model_sha256 = j.at("base_model_sha256").get<std::string>();
    w.min_examples = j.at("min_examples").get<uint32_t>();
    w.detail = j.at("detail").get<std::string>();
    w.leader = j.at("leader").get<std::string>();
    w.leader_tls = j.at("leader_tls").get<bool>();
    auto key = HexDecode(j.at("coin_key").get<std::string>());
    if (!key.ok()) return absl::InvalidArgumentError("the selection window's coin_key is not hex");
    w.coin_key = std::move(*key);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("the published selection window lacks a field or has a wrong type (",
                     e.what(), "); hint: the leader and the edges must run the same release"));
  }
  if (w.state != "selecting" && w.state != "closed" && w.state != "finished") {
    return absl::InvalidArgumentError(
        absl::StrCat("the published selection window's state '", w.state, "' is unknown"));
  }
  return w;
}

std::string CoinsFlippedKey(uint64_t round) { return absl::StrCat("coins_flipped/", round); }

void SetRetryWindow(v1::Rejection* rej, absl::Duration earliest, absl::Duration retry_min,
                    absl::Duration retry_max) {
  const absl::Duration lo = std::max(earliest, retry_min);
  const absl::Duration spread = std::max(retry_max - retry_min, absl::Milliseconds(100));
  rej->set_retry_min_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(lo)));
  rej->set_retry_max_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(lo + spread)));
}

std::optional<v1::CheckInResponse> RejectBeforeCoin(const std::string& base, uint32_t min_examples,
                                                    const v1::CheckInRequest& request,
                                                    absl::Duration retry_min,
                                                    absl::Duration retry_max) {
  v1::CheckInResponse r;
  auto* rej = r.mutable_rejection();
  const std::string& got = request.base_model_sha256();
  if (!base.empty() && got != base) {
    rej->set_reason(v1::REJECTION_BASE_MISMATCH);
    rej->set_detail(absl::StrCat("this coordinator trains adapters for base model ", base,
                                 "; the device runs ", got.empty() ? "(none)" : got));
    SetRetryWindow(rej, absl::Hours(24), retry_min, retry_max);
    return r;
  }
  if (!request.eligible()) {
    // The device decides eligibility itself and sends one bit, never its count.
    rej->set_reason(v1::REJECTION_TOO_FEW_EXAMPLES);
    rej->set_detail(absl::StrCat("the device says it holds fewer training windows than the "
                                 "recipe's minimum (",
                                 min_examples, "); check in again when it has more"));
    SetRetryWindow(rej, absl::Hours(1), retry_min, retry_max);
    return r;
  }
  return std::nullopt;
}

void CountRejection(MetricsRegistry& metrics, v1::RejectionReason reason) {
  metrics.Increment(kMetricCheckinsTotal, {"rejected"});
  metrics.Increment(kMetricRejectionsTotal, {v1::RejectionReason_Name(reason)});
}

}  // namespace fedlora::coordinator
